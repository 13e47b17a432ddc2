"""``docs/cli.md``, generated from the commands' own help texts.

    python -m attnviz.cli._docs > docs/cli.md

A test checks that the file in the repository equals what this prints, so the reference
never drifts from ``--help``.
"""

from __future__ import annotations


def cli_reference(width: int = 100) -> str:
    from typing import Any

    import typer

    from attnviz.cli import app

    root = typer.main.get_command(app)
    parts = [
        "# Command-line reference\n",
        "Generated from `attnviz --help` and each command's `--help` by "
        "`python -m attnviz.cli._docs > docs/cli.md`; a test keeps it current.\n",
    ]

    def context(command: Any, name: str, parent: Any) -> Any:
        return command.context_class(
            command,
            info_name=name,
            parent=parent,
            terminal_width=width,
            max_content_width=width,
            help_option_names=["-h", "--help"],
        )

    def help_of(command: Any, name: str, parent: Any) -> str:
        return str(command.get_help(context(command, name, parent)))

    root_context = context(root, "attnviz", None)
    parts.append(f"## attnviz\n\n```\n{help_of(root, 'attnviz', None)}\n```\n")
    for name in root.list_commands(root_context):  # type: ignore[attr-defined]
        command = root.get_command(root_context, name)  # type: ignore[attr-defined]
        assert command is not None
        parts.append(f"## attnviz {name}\n\n```\n{help_of(command, name, root_context)}\n```\n")
    return "\n".join(parts)


if __name__ == "__main__":
    print(cli_reference(), end="")
