"""Infrastructure shared by the three packages: atomic writes, progress bars and status lines, the ordered
parallel map, file hashing, disk space, safe file names and the command-line runner."""
