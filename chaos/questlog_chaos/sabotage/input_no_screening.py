"""T5's mechanism broken: the API's screening beyond the JSON Schemas is off (duplicate
keys, control characters and lone surrogates, the event_time window), so hostile bodies
that the schemas alone let through are accepted and stored."""


def apply(patch) -> None:
    from questlog_api import envelope

    patch.setattr(envelope, "_has_duplicate_keys", lambda data, lines, parsed: False)
    patch.setattr(envelope, "_may_hold_forbidden_chars", lambda events: False)
    patch.setattr(envelope, "event_time_violation", lambda event_time, now: None)
    patch.setattr(envelope, "FORBIDDEN_CHARS", __import__("re").compile(r"(?!x)x"))
