"""Pure domain: events, commands and the deciders of the TrainingJob and Client aggregates.

Nothing here does I/O or imports anything else of ours.
"""
