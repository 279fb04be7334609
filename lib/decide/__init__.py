"""Decisions as data: plain functions from run records to a verdict, the same in both executors."""
