"""Networks: backbones from every source, the classifier head and the LightningModules."""
