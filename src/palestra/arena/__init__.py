"""Arena data and ratings: battle records and their file formats, cleaning, and the rating
systems (online Elo, Bradley-Terry with confidence intervals, style control) behind the
leaderboard. Pure numpy/scipy; no serving or UI code here."""
