import os

from questlog_service import multiproc


def test_prepare_makes_a_directory_once_and_remove_made_deletes_it(monkeypatch):
    monkeypatch.setenv(multiproc.ENV, "")  # restored afterwards, whatever prepare sets
    made = multiproc.prepare("questlog-test")
    try:
        assert os.environ[multiproc.ENV] == str(made)
        assert made.is_dir()
        assert made.name.startswith("questlog-test-metrics-")
        assert multiproc.prepare("questlog-test") == made  # the variable is set now
    finally:
        multiproc.remove_made()
    assert not made.exists()


def test_a_given_directory_is_emptied_not_removed(monkeypatch, tmp_path):
    directory = tmp_path / "metrics"
    monkeypatch.setenv(multiproc.ENV, str(directory))
    assert multiproc.prepare("questlog-test") == directory
    multiproc.empty()  # created
    (directory / "counter_1.db").write_bytes(b"stale")
    (directory / "sub").mkdir()
    multiproc.empty()
    assert directory.is_dir()
    assert not any(directory.iterdir())
    multiproc.remove_made()
    assert directory.is_dir()
    multiproc.mark_dead(os.getpid() + 1)  # no files for it: nothing to do, no error
