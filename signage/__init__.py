"""Screen publishing: laid-out content for window screens, hall boards and rest-area displays."""
