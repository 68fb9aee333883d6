"""Errors the user can act on. The CLI prints them as one line and exits with their code."""


class VramplanError(Exception):
    """A problem with the user's input or environment, with what to do about it."""

    exit_code = 2

    def __init__(self, message: str, *, hint: str | None = None):
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return f"{self.message} ({self.hint})" if self.hint else self.message


class NotFoundError(VramplanError):
    """An unknown model or GPU name; carries the closest catalog names."""

    def __init__(self, kind: str, name: str, suggestions: list[str], list_command: str):
        self.suggestions = suggestions
        if suggestions:
            hint = "did you mean: " + ", ".join(suggestions) + f"? `{list_command}` lists them all"
        else:
            hint = f"`{list_command}` lists the catalog"
        super().__init__(f"unknown {kind} {name!r}", hint=hint)
