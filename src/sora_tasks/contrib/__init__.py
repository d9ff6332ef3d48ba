"""Integrations with frameworks that sora_tasks does not depend on; each sits behind an extra."""
