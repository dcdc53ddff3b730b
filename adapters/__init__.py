"""Platform adapters: each turns a platform's events into `Incoming` and renders the core's views."""
