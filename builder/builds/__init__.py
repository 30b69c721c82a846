"""Running a build: the orchestrator, one module per kind of step, the step cache, the build context and
the scratch rootfs each filesystem step runs on."""
