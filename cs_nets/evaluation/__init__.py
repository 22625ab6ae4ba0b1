"""Using a trained model: ``evaluate`` (accuracy on a split of its own data) and ``predict`` (classify images).

Public: ``cs_nets.evaluation.predict.TrainedModel`` (``TrainedModel.load(run_dir).predict(images)``,
also ``cs_nets.load_model``) and ``cs_nets.evaluation.evaluate.evaluate_checkpoint``. Imported
by module, so that ``import cs_nets.evaluation`` stays light.
"""
