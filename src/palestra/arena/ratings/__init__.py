"""Rating systems: aggregation of battles into pair counts, Bradley-Terry (maximum
likelihood, bootstrap and sandwich intervals, anchoring), style control, online Elo, and
ranking with ties where intervals overlap."""
