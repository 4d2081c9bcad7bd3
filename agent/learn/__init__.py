"""The learner (one or S stacked members), its compiled update, greedy evaluation."""
