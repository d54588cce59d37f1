"""The worker: ONE app that hosts one or more models behind the `Backend` seam, whatever
the engine; it admits requests through a bounded queue and keeps itself registered."""
