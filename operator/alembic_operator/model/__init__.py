"""Typed, immutable models shared by the runner and the operator. Pure: no I/O, no clock."""
