"""A run as data: where its files live (`layout`) and the typed records it writes (`records`)."""
