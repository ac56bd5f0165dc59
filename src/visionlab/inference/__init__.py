"""Using what training left behind: a classifier from its checkpoint alone (evaluation,
prediction, export) and run directories read back (comparison of runs)."""
