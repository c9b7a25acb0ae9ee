"""The local cloud: an embedded AWS emulator, the app's own handlers, executors that build, train and host."""
