"""flp's FL runtime: Flower engines, the job supervisor and the Flower app they run."""
