"""Lightning callbacks that log images and figures."""
