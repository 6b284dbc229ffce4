"""The data_reduction tutorial plugin: models.py holds its table, tasks.py its pipeline."""
