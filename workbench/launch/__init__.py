"""Launching a sweep elsewhere than in this process: ``slurm`` submits it as a job array (``--launcher slurm``)."""
