"""The demo's queues: emails to send, and images to resize then publish."""
