"""The pure core: decisions as functions of their inputs. No I/O, no clock, no libraries."""
