"""The network: backbone and FPN, anchors, RPN and proposals, RoIAlign, the box/class and mask
heads, detection, the training targets and losses, box coding, and the functional graph
(``mrcnn.modeling.graph``) that wires them together."""
