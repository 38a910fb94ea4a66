"""`act3d demo`, the main job: `pipeline.run_demo` runs it (arms, configs, plan, stage steps, typed
results, paired comparisons, report)."""
