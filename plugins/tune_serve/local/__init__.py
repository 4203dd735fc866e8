"""Local backend: pod tasks as detached processes in the trainer environment, the chief as one
such process, and serving through the local TF Serving stand-in."""
