"""questlog-report: the walkthrough's analytics report, a client of the query REST API."""
