"""The class names a Keras config may use without naming a module.

A legacy Keras model (HDF5 ``model_config``, Keras 2 / ``tf.keras`` and the HDF5 files
Keras 3 still writes) gives most objects only a ``class_name``. The loader looks the
name up among Keras's own classes and the custom objects the *calling code* registered
or passed in; so a name Keras does not define means code outside the model file must
supply the class, which the scanner treats like a pickle global outside the allowlist.

:data:`KERAS_CLASS_NAMES` holds the public class names of Keras 3.15's ``layers``,
``models``, ``initializers``, ``regularizers``, ``constraints``, ``optimizers`` (and
``schedules``), ``losses``, ``metrics``, ``dtype_policies`` and ``quantizers``
namespaces, plus ``Functional`` and a few Keras 2 names that Keras 3 dropped. Names
that run code (``Lambda``) are listed here too and caught by their own rule first.

Examples
--------
>>> "Dense" in KERAS_CLASS_NAMES, "Plus" in KERAS_CLASS_NAMES
(True, False)
"""

from __future__ import annotations

__all__ = ["KERAS_CLASS_NAMES", "KERAS_DATA_CLASSES"]

_KERAS3 = """
    AUC AWQConfig AWQDTypePolicy AbsMaxQuantizer Accuracy Activation
    ActivityRegularization Adadelta Adafactor Adagrad Adam AdamW Adamax
    AdaptiveAveragePooling1D AdaptiveAveragePooling2D AdaptiveAveragePooling3D
    AdaptiveMaxPooling1D AdaptiveMaxPooling2D AdaptiveMaxPooling3D Add AdditiveAttention
    AlphaDropout Attention AugMix AutoContrast Average AveragePooling1D AveragePooling2D
    AveragePooling3D AvgPool1D AvgPool2D AvgPool3D BatchNormalization Bidirectional
    BinaryAccuracy BinaryCrossentropy BinaryFocalCrossentropy BinaryIoU CTC
    CategoricalAccuracy CategoricalCrossentropy CategoricalFocalCrossentropy
    CategoricalGeneralizedCrossEntropy CategoricalHinge CategoryEncoding CenterCrop
    Circle Concatenate ConcordanceCorrelation Constant Constraint
    ContrastLimitedAdaptiveHistogramEqualization Conv1D Conv1DTranspose Conv2D
    Conv2DTranspose Conv3D Conv3DTranspose ConvLSTM1D ConvLSTM2D ConvLSTM3D
    Convolution1D Convolution1DTranspose Convolution2D Convolution2DTranspose
    Convolution3D Convolution3DTranspose CosineDecay CosineDecayRestarts
    CosineSimilarity Cropping1D Cropping2D Cropping3D CutMix DTypePolicy DTypePolicyMap
    Dense DepthwiseConv1D DepthwiseConv2D Dice Discretization Dot Dropout ELU
    EinsumDense Embedding Equalization ExponentialDecay F1Score FBetaScore
    FalseNegatives FalsePositives Flatten FlaxLayer Float8QuantizationConfig
    FloatDTypePolicy Ftrl Functional GPTQConfig GPTQDTypePolicy GRU GRUCell
    GaussianDropout GaussianNoise GlobalAveragePooling1D GlobalAveragePooling2D
    GlobalAveragePooling3D GlobalAvgPool1D GlobalAvgPool2D GlobalAvgPool3D
    GlobalMaxPool1D GlobalMaxPool2D GlobalMaxPool3D GlobalMaxPooling1D
    GlobalMaxPooling2D GlobalMaxPooling3D GlorotNormal GlorotUniform GroupNormalization
    GroupQueryAttention HashedCrossing Hashing HeNormal HeUniform Hinge Huber Identity
    IdentityInitializer Initializer InputLayer InputSpec Int4DTypePolicy
    Int4QuantizationConfig Int8QuantizationConfig IntegerLookup InverseTimeDecay IoU
    JaxLayer KLDivergence L1 L1L2 L2 LSTM LSTMCell Lamb Lambda Layer LayerNormalization
    LeakyReLU LearningRateSchedule LecunNormal LecunUniform Lion LogCosh LogCoshError
    Loss LossScaleOptimizer Masking MaxNorm MaxNumBoundingBoxes MaxPool1D MaxPool2D
    MaxPool3D MaxPooling1D MaxPooling2D MaxPooling3D Maximum Mean MeanAbsoluteError
    MeanAbsolutePercentageError MeanIoU MeanMetricWrapper MeanSquaredError
    MeanSquaredLogarithmicError MelSpectrogram Metric MinMaxNorm Minimum MixUp Model
    MultiHeadAttention MultiOptimizer Multiply Muon Nadam NonNeg Normalization OneHotIoU
    OneHotMeanIoU Ones Optimizer OptimizerMap Orthogonal OrthogonalInitializer
    OrthogonalRegularizer PReLU PearsonCorrelation Permute PiecewiseConstantDecay
    Pipeline Poisson PolynomialDecay Precision PrecisionAtRecall QuantizationConfig
    QuantizedDTypePolicy QuantizedFloat8DTypePolicy Quantizer R2Score RMSNormalization
    RMSprop RNN RandAugment RandomBrightness RandomColorDegeneration RandomColorJitter
    RandomContrast RandomCrop RandomElasticTransform RandomErasing RandomFlip
    RandomGaussianBlur RandomGrayscale RandomHue RandomInvert RandomNormal
    RandomPerspective RandomPosterization RandomRotation RandomSaturation
    RandomSharpness RandomShear RandomTranslation RandomUniform RandomZoom ReLU Recall
    RecallAtPrecision Regularizer RepeatVector Rescaling Reshape Resizing
    ReversibleEmbedding RootMeanSquaredError SGD STFT STFTInitializer STFTSpectrogram
    ScheduleFreeAdamW SensitivityAtSpecificity SeparableConv1D SeparableConv2D
    SeparableConvolution1D SeparableConvolution2D Sequential SimpleRNN SimpleRNNCell
    Softmax Solarization SparseCategoricalAccuracy SparseCategoricalCrossentropy
    SparseTopKCategoricalAccuracy SpatialDropout1D SpatialDropout2D SpatialDropout3D
    SpecificityAtSensitivity SpectralNormalization SquaredHinge StackedRNNCells
    StringLookup Subtract Sum TFSMLayer TextVectorization TimeDistributed
    TopKCategoricalAccuracy TorchModuleWrapper TrueNegatives TruePositives
    TruncatedNormal Tversky UnitNorm UnitNormalization UpSampling1D UpSampling2D
    UpSampling3D VarianceScaling Wrapper ZeroPadding1D ZeroPadding2D ZeroPadding3D Zeros
    constant glorot_normal glorot_uniform he_normal he_uniform identity l1 l1_l2 l2
    lecun_normal lecun_uniform max_norm min_max_norm non_neg ones orthogonal
    orthogonal_regularizer random_normal random_uniform stft truncated_normal unit_norm
    variance_scaling zeros
"""

_KERAS2_ONLY = """
    CuDNNGRU CuDNNLSTM DenseFeatures LocallyConnected1D LocallyConnected2D Policy
    RandomFourierFeatures SequenceFeatures SyncBatchNormalization ThresholdedReLU
"""

#: Class names Keras resolves to its own classes.
KERAS_CLASS_NAMES: frozenset[str] = frozenset((_KERAS3 + _KERAS2_ONLY).split())

#: ``class_name`` markers of plain values in Keras configs (tuples, arrays, bytes, slices).
KERAS_DATA_CLASSES: frozenset[str] = frozenset(
    {
        "__tuple__",
        "__numpy__",
        "__bytes__",
        "__tensor__",
        "__typespec__",
        "__ellipsis__",
        "__slice__",
        "__keras_tensor__",
    }
)
