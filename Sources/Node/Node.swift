// Node service.
