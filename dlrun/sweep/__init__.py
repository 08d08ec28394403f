"""Many trials from one command: the search space, the plan of vectorised groups, the studies
in `experiments/`, and the executors that run the groups into one sweep folder.
"""
