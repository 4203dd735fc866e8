"""Step `train`: fully train one of the top-N configurations and export it for serving.

`trainer.training.run.run(args: TrainArgs) -> TrainResult`, in three parts:
    resolve   the flags against the prepared data and the model (the trial's hyperparameters,
              the objective, the space the model declares); checked before anything is written
    fit       the fit itself: resumable, early-stopped, stopped on a diverging loss
    export    the best epoch's weights, their eval metrics, and the SavedModel

Writes `{run_root}/models/{rank}/`:
    checkpoints/   resumable state (see trainer.checkpointing): a restarted pod continues
                   from its last finished epoch
    logs/          TensorBoard, and history.csv (Keras CSVLogger: the metrics of every epoch)
    saved_model/   the export TF Serving loads (see trainer.savedmodel), swapped in whole
    training.json  this step's result, for people browsing the bucket
"""
