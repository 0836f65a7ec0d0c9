"""The errors a user can cause or meet, at the bottom of the toolkit (they import nothing of it): each becomes ONE
line on stderr naming the thing and the fix (common.cli.run_main), exit status 2, or for a preemption the signal's
own status after the state is saved."""
from __future__ import annotations


class UsageError(Exception):
    """Bad input from the user: reported as one line on stderr, exit status 2, nothing written."""


class CheckpointError(Exception):
    """A checkpoint that is missing, unreadable or of another configuration: one line naming it and the fix."""


class DataError(Exception):
    """A dataset that cannot be found or read: one line saying where it should be and how to get it."""


class Preempted(Exception):
    """SIGTERM/SIGINT arrived: state was saved, the same command resumes."""

    def __init__(self, state_path, signum):
        self.state_path, self.signum = state_path, signum
        super().__init__(f"interrupted by signal {signum}: state saved to {state_path}; rerun the same command "
                         f"to resume")
