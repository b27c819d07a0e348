"""T14's mechanism broken: `make run`'s supervisor logs a crashed process but never
restarts it, so one component's crash leaves it down for good (as under honcho, where it
stopped the whole stack)."""

from __future__ import annotations


def apply(patch) -> None:
    from questlog_embedded import supervise

    def crashed(self, child, code: int, uptime: float) -> None:
        self.log(
            f"{child.name} crashed ({supervise.describe(code)}) after {uptime:.1f} s "
            "up; sabotage: not restarted"
        )

    patch.setattr(supervise.Supervisor, "crashed", crashed)
