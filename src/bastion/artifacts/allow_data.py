"""The curated data behind the default allowlist and the severity of refused globals.

Everything here is reviewed by hand; the scanner never imports a module to decide.
Each ecosystem is a table of ``module: names`` lines (``#`` starts a comment saying
why the entries are safe); :mod:`bastion.artifacts.allowlist` turns the tables into the
decision function that the scanner and :func:`~bastion.artifacts.safe_load` share.

Examples
--------
>>> "_rebuild_tensor_v2" in ECOSYSTEMS["pytorch"]["torch._utils"]
True
>>> classify("posix", "system").value, classify("mylib.models", "Net").value
('code_execution', 'unknown_global')
"""

from __future__ import annotations

from collections.abc import Mapping

from bastion.artifacts.issues import Category

__all__ = [
    "ECOSYSTEMS",
    "SKLEARN_EXCLUDED_MODULES",
    "STORAGE_ELEMENT_SIZE",
    "TORCHSCRIPT_EXTRA",
    "classify",
    "parse_table",
]


def parse_table(text: str) -> dict[str, frozenset[str]]:
    """``module: name name ...`` lines (comments after ``#``) -> ``{module: names}``.

    Examples
    --------
    >>> sorted(parse_table("a.b: X Y  # why\\na.b: Z")["a.b"])
    ['X', 'Y', 'Z']
    """
    table: dict[str, set[str]] = {}
    for raw in text.splitlines():
        line = raw.split("#", 1)[0].strip()
        if line:
            module, _, names = line.partition(":")
            table.setdefault(module.strip(), set()).update(names.split())
    return {m: frozenset(n) for m, n in table.items()}


def _words(text: str) -> list[str]:
    return text.split()


#: Element size in bytes of each torch storage class (legacy formats and size checks).
STORAGE_ELEMENT_SIZE: Mapping[str, int] = {
    "DoubleStorage": 8, "FloatStorage": 4, "HalfStorage": 2, "LongStorage": 8,
    "IntStorage": 4, "ShortStorage": 2, "CharStorage": 1, "ByteStorage": 1, "BoolStorage": 1,
    "BFloat16Storage": 2, "ComplexDoubleStorage": 16, "ComplexFloatStorage": 8,
    "QUInt8Storage": 1, "QInt8Storage": 1, "QInt32Storage": 4, "QUInt4x2Storage": 1,
    "QUInt2x4Storage": 1, "UntypedStorage": 1,
}  # fmt: skip

_BUILTINS = """
# Types whose constructors only build values from values.
builtins: set frozenset bytearray bytes slice complex range object int float str bool
builtins: tuple list dict Ellipsis NotImplemented
# copyreg's helpers call cls.__new__ / base.__init__ of an (already allowed) class.
copyreg: _reconstructor __newobj__ __newobj_ex__
# _codecs.encode turns a latin-1 str into bytes: how protocol 2 writes bytes.
_codecs: encode
"""

_COLLECTIONS = """
collections: OrderedDict defaultdict Counter deque
datetime: date time datetime timedelta timezone
decimal: Decimal
fractions: Fraction
uuid: UUID
argparse: Namespace  # hyper-parameters saved in many checkpoints
"""

_NUMPY = """
numpy: dtype ndarray matrix bool_ bool int8 int16 int32 int64 uint8 uint16 uint32 uint64
numpy: intc uintc intp uintp longlong ulonglong byte ubyte short ushort long ulong half
numpy: single double longdouble float16 float32 float64 complex64 complex128 clongdouble
numpy: csingle cdouble str_ bytes_ void object_ datetime64 timedelta64
numpy.dtypes: BoolDType Int8DType Int16DType Int32DType Int64DType UInt8DType UInt16DType
numpy.dtypes: UInt32DType UInt64DType Float16DType Float32DType Float64DType LongDoubleDType
numpy.dtypes: Complex64DType Complex128DType CLongDoubleDType StrDType BytesDType VoidDType
numpy.dtypes: ObjectDType DateTime64DType TimeDelta64DType StringDType ByteDType UByteDType
numpy.dtypes: ShortDType UShortDType IntDType UIntDType LongDType ULongDType LongLongDType
numpy.dtypes: ULongLongDType
# Array and scalar reconstruction: allocate an array or scalar of an allowed type.
numpy.core.multiarray: _reconstruct scalar
numpy._core.multiarray: _reconstruct scalar
numpy.core.numeric: _frombuffer
numpy._core.numeric: _frombuffer
numpy.ma.core: MaskedArray _mareconstruct MaskedConstant
# Random generators: the ctors look a bit generator up by name in a fixed table.
numpy.random._pickle: __bit_generator_ctor __generator_ctor __randomstate_ctor
numpy.random.mtrand: RandomState
numpy.random._generator: Generator
numpy.random._mt19937: MT19937
numpy.random._pcg64: PCG64 PCG64DXSM
numpy.random._philox: Philox
numpy.random._sfc64: SFC64
numpy.random.bit_generator: SeedSequence __pyx_unpickle_SeedSequence
"""

_PYTORCH = """
torch: Size Tensor device dtype layout strided sparse_coo sparse_csr sparse_csc sparse_bsr
torch: sparse_bsc _mkldnn contiguous_format channels_last channels_last_3d preserve_format
torch: per_tensor_affine per_tensor_symmetric per_channel_affine per_channel_symmetric
torch: per_channel_affine_float_qparams
# dtypes (pickled as torch.<name>)
torch: float32 float float64 double float16 half bfloat16 complex32 complex64 complex128
torch: cfloat cdouble uint8 uint16 uint32 uint64 int8 int16 short int32 int int64 long bool
torch: qint8 quint8 qint32 quint4x2 quint2x4 float8_e4m3fn float8_e4m3fnuz float8_e5m2
torch: float8_e5m2fnuz float8_e8m0fnu float4_e2m1fn_x2 bits1x8 bits2x4 bits4x2 bits8 bits16
torch: uint1 uint2 uint3 uint4 uint5 uint6 uint7 int1 int2 int3 int4 int5 int6 int7
# legacy typed storages and tensor types
torch: DoubleStorage FloatStorage HalfStorage LongStorage IntStorage ShortStorage
torch: CharStorage ByteStorage BoolStorage BFloat16Storage ComplexDoubleStorage
torch: ComplexFloatStorage QUInt8Storage QInt8Storage QInt32Storage QUInt4x2Storage
torch: QUInt2x4Storage DoubleTensor FloatTensor HalfTensor LongTensor IntTensor ShortTensor
torch: CharTensor ByteTensor BoolTensor BFloat16Tensor
torch.storage: TypedStorage UntypedStorage
torch.nn.parameter: Parameter Buffer
torch.serialization: _get_layout
# Tensor rebuild functions: build a tensor from a storage and sizes; a subclass type or
# function they take must itself be an allowed global.
torch._utils: _rebuild_tensor _rebuild_tensor_v2 _rebuild_tensor_v3 _rebuild_parameter
torch._utils: _rebuild_parameter_with_state _rebuild_sparse_tensor _rebuild_nested_tensor
torch._utils: _rebuild_qtensor _rebuild_meta_tensor_no_storage _rebuild_wrapper_subclass
torch._utils: _rebuild_device_tensor_from_numpy _rebuild_device_tensor_from_cpu_tensor
torch._tensor: _rebuild_from_type _rebuild_from_type_v2
"""

_SKLEARN = """
# Reviewed helper *functions*; classes are allowed by the CapWords rule (allowlist.py).
# newObj(cls) returns cls.__new__(cls) for the binary trees and distance metrics.
sklearn.neighbors._kd_tree: newObj
sklearn.neighbors._ball_tree: newObj
sklearn.neighbors._binary_tree: newObj
sklearn.metrics._dist_metrics: newObj
"""

_JOBLIB = """
# NumpyArrayWrapper only records shape and dtype; joblib reads the array bytes after it.
joblib.numpy_pickle: NumpyArrayWrapper
sklearn.externals.joblib.numpy_pickle: NumpyArrayWrapper
"""

#: Reviewed globals per ecosystem: ``{ecosystem: {module: names}}``.
ECOSYSTEMS: Mapping[str, Mapping[str, frozenset[str]]] = {
    "builtins": parse_table(_BUILTINS),
    "collections": parse_table(_COLLECTIONS),
    "numpy": parse_table(_NUMPY),
    "pytorch": parse_table(_PYTORCH),
    "sklearn": parse_table(_SKLEARN),
    "joblib": parse_table(_JOBLIB),
}

#: Sub-packages of scikit-learn whose classes are *not* allowed by the CapWords rule:
#: test helpers, vendored third-party code, build checks and dataset downloaders.
SKLEARN_EXCLUDED_MODULES = (
    "sklearn.tests",
    "sklearn.utils._testing",
    "sklearn.utils._show_versions",
    "sklearn.utils.discovery",
    "sklearn.externals",
    "sklearn.datasets",
    "sklearn.callback",
    "sklearn._build_utils",
    "sklearn.__check_build",
    "sklearn.conftest",
)

#: Extra globals that TorchScript's own (C++) unpickler resolves inside a TorchScript
#: archive (besides ``__torch__.*`` classes compiled from the archive's code).
TORCHSCRIPT_EXTRA = parse_table("""
torch.jit._pickle: build_intlist build_tensorlist build_doublelist build_boollist
torch.jit._pickle: build_tensor_from_id restore_type_tag
""")

# -- severity of refused globals --------------------------------------------------------
_EXEC_NAMES = parse_table("""
builtins: eval exec compile __import__ getattr setattr delattr globals locals vars
builtins: breakpoint input help type super __build_class__ apply execfile
torch: load hub jit ops classes _C
torch.storage: _load_from_bytes
numpy: load
""")
_FILE_NAMES = parse_table("""
builtins: open print memoryview
torch: save from_file
numpy: fromfile tofile memmap save savez loadtxt genfromtxt
codecs: open
""")
_EXEC_MODULES = _words("""
os posix nt subprocess sys runpy pickle _pickle cPickle pickletools dill cloudpickle marshal
types code codeop pty pdb bdb timeit cProfile profile pydoc pkgutil pip setuptools
distutils ctypes _ctypes cffi multiprocessing concurrent importlib imp zipimport operator
functools itertools inspect ast compileall py_compile doctest unittest trace threading
_thread asyncio signal gc atexit platform commands popen2 shelve webbrowser logging.config
jinja2 yaml torch.hub torch.jit torch.ops torch.classes torch._C torch.utils.cpp_extension
torch.serialization torch.package numpy.f2py numpy.testing numpy.distutils numpy.ctypeslib
joblib keras.src.saving tensorflow _posixsubprocess _winapi winreg msvcrt
""")
_FILE_NET_MODULES = _words("""
io _io pathlib shutil tempfile glob fileinput linecache filecmp zipfile tarfile gzip bz2
lzma sqlite3 dbm mmap socket _socket ssl select selectors http urllib urllib3 requests httpx
aiohttp ftplib smtplib poplib imaplib telnetlib xmlrpc socketserver asyncore mailbox
posixpath ntpath genericpath
""")


def _under(module: str, prefixes: list[str]) -> bool:
    return any(module == p or module.startswith(p + ".") for p in prefixes)


def classify(module: str, name: str) -> Category:
    """The severity class of a *refused* global (the decision itself is the allowlist's).

    Known code runners (``os``, ``subprocess``, ``eval``, ``pickle.loads``, ``runpy``,
    ``pip``, ``pydoc.pipepager``, ``operator.attrgetter``, ``functools.partial``...)
    are ``code_execution``; file and network modules are ``file_or_network``;
    everything else is ``unknown_global``. A dotted attribute path is always
    ``code_execution``: it walks attributes of a module, the classic way to reach
    ``os.system`` through an innocent-looking one.
    """
    if "." in name or name in _EXEC_NAMES.get(module, ()):
        return Category.CODE_EXECUTION
    if name in _FILE_NAMES.get(module, ()):
        return Category.FILE_OR_NETWORK
    if _under(module, _EXEC_MODULES):
        return Category.CODE_EXECUTION
    if _under(module, _FILE_NET_MODULES):
        return Category.FILE_OR_NETWORK
    return Category.UNKNOWN_GLOBAL
