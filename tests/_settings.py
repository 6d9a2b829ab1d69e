"""Estimator settings shared by the test modules that run every estimator."""

# Small settings so the checks run in seconds; one entry per estimator class.
FAST_PARAMS = {
    "KrotovPatchEncoder": dict(n_components=8, max_iter=2, batch_size=16, random_state=0),
    "LocalCompetitiveEncoder": dict(n_components=4, hidden_layer_sizes=(6,), max_iter=3, batch_size=16, random_state=0),
    "ActivationLearningClassifier": dict(hidden_layer_sizes=(24, 24), label_repeat=4, max_iter=30, batch_size=16, random_state=0),
    "URFBClassifier": dict(hidden_layer_sizes=(16,), max_iter=10, batch_size=16, random_state=0),
    "NSMEncoder": dict(n_components=4, max_iter=2, batch_size=16, random_state=0),
}

# Further layouts of a class run through the same checks: the deep structured NSM with feedback and
# labels, and the image-shaped layouts (the convolutional and locally connected code paths).
# scikit-learn's checks fit 2-D X with 1 to 10 features, most with 3 and several with 2, while
# image_shape fixes H * W * C; so each image layout runs twice, on 1 x 3 and on 1 x 2 images, and a
# check whose X has another number of features skips (test_common._skip_if_image_shape_cannot_apply).
# Such small images leave room for 1 x 1 conv windows only; LocalCompetitiveEncoder's 3 x 3 receptive
# fields (window=3) are zero-padded at the border.
EXTRA_PARAMS = [
    (
        "NSMEncoder",
        dict(
            n_components=3,
            hidden_layer_sizes=(2,),
            structure="local",
            gamma=0.2,
            alpha=0.5,
            activation="tanh",
            max_iter=2,
            batch_size=16,
            random_state=0,
        ),
    ),
] + [
    (name, dict(params, image_shape=image_shape))
    for image_shape in [(1, 3), (1, 2)]
    for name, params in [
        ("KrotovPatchEncoder", dict(n_components=4, window=1, max_iter=2, batch_size=16, random_state=0)),
        ("NSMEncoder", dict(n_components=4, window=1, max_iter=2, batch_size=16, random_state=0)),
        ("LocalCompetitiveEncoder", dict(n_components=2, hidden_layer_sizes=(3,), window=3, max_iter=3, batch_size=16, random_state=0)),
    ]
]

# Every estimator also goes through the checks as it comes (its defaults, random_state aside): a user
# who never changes a parameter gets an estimator that keeps scikit-learn's contract (issue 15). The one
# place these run: the estimators' own test modules do not repeat them.
EXTRA_PARAMS += [
    (name, dict(random_state=0))
    for name in ("KrotovPatchEncoder", "NSMEncoder", "LocalCompetitiveEncoder", "ActivationLearningClassifier", "URFBClassifier")
]
