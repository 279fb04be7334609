"""The evaluation engine: call each model once per record (`invoke`), remember answers (`cache`),
score stored answers (`score`), or let an algorithm call the model itself (`with_model`)."""
