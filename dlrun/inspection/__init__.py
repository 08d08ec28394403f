"""`dlrun inspect RUN`: inside a trained classifier, from its run folder (nothing retrains).

loaded.py rebuilds the model, its best checkpoint and the test split from the folder;
confusion.py counts the confusions; probes.py reads a conv layer's maps and computes Grad-CAM
in one compiled forward/backward; pictures.py draws the PNGs and page.py the offline page;
run.py writes `inspect/` in the run folder. It needs JAX, so it sits on the training floor,
not with the report (which never imports JAX).
"""
