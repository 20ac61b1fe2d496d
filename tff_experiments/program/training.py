r"""The program logic of every federated run, in the style of ``tff.learning.programs.train_model``.

``train_model(track, ...)`` resumes a run from the latest state of a
``tff.program.ProgramStateManager``, then runs its server steps one after the other, releasing
each step's training metrics and model to ``tff.program`` release managers and saving the state
every ``checkpoint_every`` steps. A *track* says what a run is; it provides:

- ``num_steps``: the server steps of the whole run;
- ``initial_state()``: the run's state before step 0;
- ``program_state_template()``, ``to_program_state(state)``, ``from_program_state(saved)``:
  the state as one fixed structure of arrays, the form a state manager saves and loads;
- ``steps_done(state)``: the server steps that led to ``state``;
- ``next(state) -> (state, train_metrics)``: one server step;
- ``model_release(state)``: the model(s) after a step, as released to ``model_manager``;
- ``final_model(state)``: the trained model, as released to ``model_output_manager``.

Everything a step needs is in the saved state, so a run killed at any moment and started again
with the same state manager ends exactly where the uninterrupted run ends. Every release of a
step happens before its state is saved: a resumed run repeats the releases after the saved
step, in order, and none before (release managers that write files drop what lies beyond it).

The tracks: ``tff_experiments.asynchronous.experiment.AsynchronousExperiment`` (and
``tff_experiments.asynchronous.program.train_asynchronous_model`` for a process and a data
source of the user's) and ``tff_experiments.robust.experiment.RobustExperiment``;
``tff_experiments.program.output_folder`` runs them into a command line's output folder.
"""


async def train_model(track, *, program_state_manager, train_metrics_manager=None, model_manager=None,
                      model_output_manager=None, checkpoint_every=100, stop_after=None):
    """Runs ``track`` to its end (or to ``stop_after`` steps), resuming from the latest saved state.

    Args:
      track: what the run is (see the module docstring).
      program_state_manager: a ``tff.program.ProgramStateManager``; the state is saved at step
        0, every ``checkpoint_every`` steps and at the stop, versioned by the steps done.
      train_metrics_manager: a ``tff.program.ReleaseManager``; gets each step's training
        metrics, key = steps done.
      model_manager: a ``tff.program.ReleaseManager``; gets ``track.model_release(state)`` after
        every step (key = steps done) and at key 0 when the run starts afresh, e.g. to
        evaluate the model every so often.
      model_output_manager: a ``tff.program.ReleaseManager``; gets ``track.final_model(state)``
        with key ``"final_model"`` once every step is done.
      checkpoint_every: save the state every this many steps.
      stop_after: stop once this many steps are done (a scheduled interruption; default: all).

    Returns:
      The number of server steps done.
    """
    saved, _ = await program_state_manager.load_latest(track.program_state_template())
    if saved is None:
        state = track.initial_state()
        if model_manager is not None:
            await model_manager.release(track.model_release(state), key=0)
        await program_state_manager.save(track.to_program_state(state), version=0)
    else:
        state = track.from_program_state(saved)
    stop = track.num_steps if stop_after is None else min(stop_after, track.num_steps)
    done = track.steps_done(state)
    while done < stop:
        state, train_metrics = track.next(state)
        done = track.steps_done(state)
        if train_metrics_manager is not None:
            await train_metrics_manager.release(train_metrics, key=done)
        if model_manager is not None:
            await model_manager.release(track.model_release(state), key=done)
        if done % checkpoint_every == 0 or done == stop:
            await program_state_manager.save(track.to_program_state(state), version=done)
    if model_output_manager is not None and done == track.num_steps:
        await model_output_manager.release(track.final_model(state), key="final_model")
    return done
