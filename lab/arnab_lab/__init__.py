"""The arnab.testbed emulated lab: the ARNAB testbed on one machine (see lab/README.md)."""
