"""What the tests share: helpers, and scripts run as child processes."""
