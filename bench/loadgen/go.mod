module questlog/bench/loadgen

go 1.22
