"""``python -m sora_tasks`` runs the ``sora-tasks`` command line."""

from .cli import main

main()
