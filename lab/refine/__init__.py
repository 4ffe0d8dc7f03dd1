"""Refining a trained model on the bench it runs on, camera in the loop (issue 21; decision 0016)."""
