"""Reading results folders: leaderboards, statistics per task and across tasks, Bayesian pairs,
importance, figures and reports. Never imports Keras."""
