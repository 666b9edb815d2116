"""What every step uses: errors, logs, the output bridge, the process runner, waiting, progress,
hashing, paths, image labels and the revision being built."""
