"""Developer sessions: ``nox -s lint typecheck tests`` is what CI runs."""

from __future__ import annotations

import nox

nox.options.default_venv_backend = "venv"
nox.options.sessions = ["lint", "typecheck", "tests"]

PYPROJECT = nox.project.load_toml("pyproject.toml")


def install(session: nox.Session, *groups: str) -> None:
    session.install("-e", ".[all]")
    for group in groups:
        session.install(*nox.project.dependency_groups(PYPROJECT, group))


@nox.session(python="3.11")
def tests(session: nox.Session) -> None:
    """Run the test suite (PostgreSQL tier when SORA_TASKS_TEST_POSTGRES_URL is set)."""
    install(session, "test")
    session.run("pytest", *session.posargs)


@nox.session(python="3.11")
def lint(session: nox.Session) -> None:
    """Ruff lint and format check."""
    session.install(*nox.project.dependency_groups(PYPROJECT, "lint"))
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")


@nox.session(python="3.11")
def typecheck(session: nox.Session) -> None:
    """mypy --strict on src and tests."""
    install(session, "test", "lint")
    session.run("mypy", "--strict", "src", "tests")


@nox.session(python="3.11")
def docs(session: nox.Session) -> None:
    """Build the documentation site into site/; any warning (a broken link, say) fails."""
    install(session, "docs")
    session.run("mkdocs", "build", "--strict", "--site-dir", "site", *session.posargs)
