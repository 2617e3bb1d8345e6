"""One report format for every interop script: each check is a line, ok or FAIL, and the script's exit
status says whether all passed."""


class Report:
    """The checks of one script run."""

    def __init__(self):
        self.failures = []

    def check(self, condition, message):
        print(("  ok   " if condition else "  FAIL ") + message, flush=True)
        if not condition:
            self.failures.append(message)
        return condition

    def summary(self, name):
        """Prints the outcome and returns the exit status."""
        if self.failures:
            print(f"{len(self.failures)} check(s) failed:")
            for failure in self.failures:
                print("  - " + failure)
            return 1
        print(f"{name}: all checks passed")
        return 0


REPORT = Report()
check = REPORT.check
summary = REPORT.summary
