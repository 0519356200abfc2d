"""lstmkit.tasks: ready sequence tasks (data -> model -> training -> report)."""
