"""Domain errors: a command broke a rule. Raised by `decide`, never by `evolve`."""


class DomainError(Exception):
    """A command is not allowed in the aggregate's current state."""

    code = "rule_broken"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class UnknownAggregate(DomainError):
    """The command addresses an aggregate that does not exist."""

    code = "not_found"
