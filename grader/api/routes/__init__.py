"""The API's routes, one module per area: grading, rubrics, health."""
