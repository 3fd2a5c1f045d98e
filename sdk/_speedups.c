/* Native twins of hot paths whose cost is the Python frame itself.
 *
 * Optional: the build skips this module where no C compiler is found, and every caller keeps a
 * pure-Python twin that passes the same tests (tests run both). Only what a Python function
 * cannot do below its own call overhead belongs here.
 *
 * parse_traceparent: the fixed-position fields of a W3C ``traceparent``, what
 * ``sdk/propagation/tracecontext.py`` reads with one regular expression and two ``int(x, 16)``
 * on every request that carries one (half of extract's time).
 *
 * format_traceparent: the header inject writes, in one allocation.
 *
 * plain_attributes: the check every span start makes that its attributes need no cleaning.
 *
 * ContextStream: a response body run with its call's context attached around each step
 * (``instrumentors/toolkit.py``'s ``_Stream``): a WSGI server pulls every body through it, so each
 * request pays its step twice at least (the chunk, then the end).
 *
 * RecordFactory: the ``logging`` record factory of ``telemetry_run.sdk.log_correlation``. Any
 * Python-level factory that chains to the previous one costs a frame per log record, which is
 * most of what the peer's factory costs too; this one adds a C call, one context variable read
 * and one dict update. Outside a span (most records of most processes) it writes the invalid
 * fields into the record's ``__dict__`` itself; inside one it calls the Python ``in_span(record,
 * span)`` (the per-span cache of the formatted ids lives there).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stddef.h>
#include <string.h>

typedef struct {
    PyObject_HEAD
    PyObject *previous;   /* the factory set before ours: it makes the record */
    PyObject *span_var;   /* the ContextVar holding the current span (None outside any) */
    PyObject *invalid;    /* dict: the fields outside a span */
    PyObject *gate;       /* ``gate.active`` false: records pass through untouched */
    PyObject *in_span;    /* in_span(record, span): adds the fields of ``span`` */
    vectorcallfunc vectorcall;
} RecordFactory;

static PyObject *str_active;

/* -- parse_traceparent ------------------------------------------------------------------- */

/* The value of a lowercase hex digit, or -1: W3C allows no uppercase. */
static inline int
hex_value(Py_UCS1 c)
{
    if (c >= '0' && c <= '9') {
        return c - '0';
    }
    if (c >= 'a' && c <= 'f') {
        return c - 'a' + 10;
    }
    return -1;
}

/* ``count`` hex digits at ``s`` into *value; 0 when one is not a lowercase hex digit. */
static inline int
read_hex(const Py_UCS1 *s, int count, unsigned long long *value)
{
    unsigned long long v = 0;
    for (int i = 0; i < count; i++) {
        int digit = hex_value(s[i]);
        if (digit < 0) {
            return 0;
        }
        v = (v << 4) | (unsigned long long)digit;
    }
    *value = v;
    return 1;
}

/* A non-negative int from two 64-bit halves (high may be 0). */
static PyObject *
long_from_halves(unsigned long long high, unsigned long long low)
{
    if (high == 0) {
        return PyLong_FromUnsignedLongLong(low);
    }
    PyObject *result = NULL, *shifted = NULL;
    PyObject *h = PyLong_FromUnsignedLongLong(high);
    PyObject *l = PyLong_FromUnsignedLongLong(low);
    PyObject *bits = PyLong_FromLong(64);
    if (h != NULL && l != NULL && bits != NULL) {
        shifted = PyNumber_Lshift(h, bits);
        if (shifted != NULL) {
            result = PyNumber_Or(shifted, l);
        }
    }
    Py_XDECREF(shifted);
    Py_XDECREF(bits);
    Py_XDECREF(l);
    Py_XDECREF(h);
    return result;
}

/* parse_traceparent(header) -> (trace_id, trace_hex, span_id, flags) | None
 *
 * The first 55 characters of ``header`` as ``version-trace_id-parent_id-flags`` (lowercase hex,
 * version not ``ff``, both ids non-zero), as the Python twin's regular expression matches them
 * (a prefix match: what follows is the caller's to check). None when they are not.
 */
static PyObject *
parse_traceparent(PyObject *module, PyObject *header)
{
    if (!PyUnicode_Check(header)) {
        PyErr_SetString(PyExc_TypeError, "parse_traceparent: header must be a str");
        return NULL;
    }
    if (PyUnicode_GET_LENGTH(header) < 55) {
        Py_RETURN_NONE;
    }
    /* The 55 characters read, whatever the string's width (a wide one may still hold a valid
     * traceparent followed by other text); none of them may be beyond ASCII. */
    Py_UCS1 copy[55];
    const Py_UCS1 *s = copy;
    int kind = PyUnicode_KIND(header);
    if (kind == PyUnicode_1BYTE_KIND) {
        s = PyUnicode_1BYTE_DATA(header); /* Latin-1 beyond ASCII fails the checks below */
    }
    else {
        const void *data = PyUnicode_DATA(header);
        for (int i = 0; i < 55; i++) {
            Py_UCS4 c = PyUnicode_READ(kind, data, i);
            if (c > 0x7f) {
                Py_RETURN_NONE;
            }
            copy[i] = (Py_UCS1)c;
        }
    }
    unsigned long long version, trace_high, trace_low, span, flags;
    if (!read_hex(s, 2, &version) || version == 0xff || s[2] != '-' || s[35] != '-' ||
        s[52] != '-' || !read_hex(s + 3, 16, &trace_high) || !read_hex(s + 19, 16, &trace_low) ||
        !read_hex(s + 36, 16, &span) || !read_hex(s + 53, 2, &flags) ||
        (trace_high == 0 && trace_low == 0) || span == 0) {
        Py_RETURN_NONE;
    }
    PyObject *trace_id = long_from_halves(trace_high, trace_low);
    PyObject *trace_hex = PyUnicode_Substring(header, 3, 35);
    PyObject *span_id = PyLong_FromUnsignedLongLong(span);
    PyObject *flags_int = PyLong_FromUnsignedLongLong(flags);
    if (trace_id == NULL || trace_hex == NULL || span_id == NULL || flags_int == NULL) {
        Py_XDECREF(trace_id);
        Py_XDECREF(trace_hex);
        Py_XDECREF(span_id);
        Py_XDECREF(flags_int);
        return NULL;
    }
    PyObject *result = PyTuple_New(4);
    if (result == NULL) {
        Py_DECREF(trace_id);
        Py_DECREF(trace_hex);
        Py_DECREF(span_id);
        Py_DECREF(flags_int);
        return NULL;
    }
    PyTuple_SET_ITEM(result, 0, trace_id);
    PyTuple_SET_ITEM(result, 1, trace_hex);
    PyTuple_SET_ITEM(result, 2, span_id);
    PyTuple_SET_ITEM(result, 3, flags_int);
    return result;
}

/* format_traceparent(trace_hex, span_id, flags) -> str
 *
 * ``00-{trace_hex}-{span_id:016x}-{flags & 3:02x}``: the header inject writes. ``trace_hex`` is
 * the trace id's 32 lowercase hex digits (the caller keeps them per trace); ``span_id`` must fit
 * 64 bits (a valid span context's does). Only the sampled and random bits are sent (W3C).
 */
static PyObject *
format_traceparent(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    static const char digits[] = "0123456789abcdef";
    if (nargs != 3 || !PyUnicode_Check(args[0]) || PyUnicode_GET_LENGTH(args[0]) != 32 ||
        PyUnicode_KIND(args[0]) != PyUnicode_1BYTE_KIND) {
        PyErr_SetString(PyExc_TypeError,
                        "format_traceparent(trace_hex: str of 32 characters, span_id, flags)");
        return NULL;
    }
    unsigned long long span = PyLong_AsUnsignedLongLong(args[1]);
    if (span == (unsigned long long)-1 && PyErr_Occurred()) {
        return NULL;
    }
    long flags = PyLong_AsLong(args[2]);
    if (flags == -1 && PyErr_Occurred()) {
        return NULL;
    }
    const Py_UCS1 *trace = PyUnicode_1BYTE_DATA(args[0]);
    for (int i = 0; i < 32; i++) {
        if (trace[i] > 0x7f) {
            PyErr_SetString(PyExc_ValueError, "format_traceparent: trace_hex is not ASCII");
            return NULL;
        }
    }
    PyObject *header = PyUnicode_New(55, 127);
    if (header == NULL) {
        return NULL;
    }
    Py_UCS1 *out = PyUnicode_1BYTE_DATA(header);
    out[0] = '0';
    out[1] = '0';
    out[2] = '-';
    memcpy(out + 3, trace, 32);
    out[35] = '-';
    for (int i = 15; i >= 0; i--) {
        out[36 + i] = (Py_UCS1)digits[span & 0xf];
        span >>= 4;
    }
    out[52] = '-';
    out[53] = '0';
    out[54] = (Py_UCS1)digits[flags & 3];
    return header;
}

/* -- plain_attributes -------------------------------------------------------------------- */

/* plain_attributes(attributes) -> dict | None
 *
 * A copy of ``attributes`` when it is exactly a dict whose keys are non-empty str and whose
 * values are exactly str, bool, float or a 64-bit int (what instrumentors pass, and what
 * ``sdk/trace/span.py``'s ``clean_attributes`` keeps as it is); None otherwise, and the caller
 * then checks each attribute itself. Never raises for the content.
 */
static PyObject *
plain_attributes(PyObject *module, PyObject *attributes)
{
    if (!PyDict_CheckExact(attributes)) {
        Py_RETURN_NONE;
    }
    Py_ssize_t pos = 0;
    PyObject *key, *value;
    while (PyDict_Next(attributes, &pos, &key, &value)) {
        if (!PyUnicode_CheckExact(key) || PyUnicode_GET_LENGTH(key) == 0) {
            Py_RETURN_NONE;
        }
        PyTypeObject *kind = Py_TYPE(value);
        if (kind == &PyUnicode_Type || kind == &PyBool_Type || kind == &PyFloat_Type) {
            continue;
        }
        if (kind != &PyLong_Type) {
            Py_RETURN_NONE;
        }
        int overflow = 0;
        (void)PyLong_AsLongLongAndOverflow(value, &overflow);
        if (overflow != 0) {
            Py_RETURN_NONE; /* beyond 64 bits: the caller drops it, and says so */
        }
    }
    return PyDict_Copy(attributes);
}

/* -- RecordFactory ----------------------------------------------------------------------- */

static PyObject *
record_factory_call(PyObject *op, PyObject *const *args, size_t nargsf, PyObject *kwnames)
{
    RecordFactory *self = (RecordFactory *)op;
    PyObject *record = PyObject_Vectorcall(self->previous, args, nargsf, kwnames);
    if (record == NULL) {
        return NULL;
    }
    PyObject *active = PyObject_GetAttr(self->gate, str_active);
    if (active == NULL) {
        goto error;
    }
    int on = PyObject_IsTrue(active);
    Py_DECREF(active);
    if (on <= 0) {
        if (on < 0) {
            goto error;
        }
        return record;
    }
    PyObject *span;
    if (PyContextVar_Get(self->span_var, Py_None, &span) < 0) {
        goto error;
    }
    if (span == Py_None) {
        Py_DECREF(span);
        /* The record's own __dict__, as the Python twin's ``record.__dict__.update``. */
        PyObject *fields = PyObject_GenericGetDict(record, NULL);
        if (fields == NULL) {
            goto error;
        }
        int updated = PyDict_Update(fields, self->invalid);
        Py_DECREF(fields);
        if (updated < 0) {
            goto error;
        }
        return record;
    }
    PyObject *pair[2] = {record, span};
    PyObject *result = PyObject_Vectorcall(self->in_span, pair, 2, NULL);
    Py_DECREF(span);
    if (result == NULL) {
        goto error;
    }
    Py_DECREF(result);
    return record;
error:
    Py_DECREF(record);
    return NULL;
}

static PyObject *
record_factory_new(PyTypeObject *type, PyObject *args, PyObject *kwargs)
{
    static char *names[] = {"previous", "span_var", "invalid", "gate", "in_span", NULL};
    PyObject *previous, *span_var, *invalid, *gate, *in_span;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "OO!O!OO:RecordFactory", names, &previous,
                                     &PyContextVar_Type, &span_var, &PyDict_Type, &invalid,
                                     &gate, &in_span)) {
        return NULL;
    }
    if (!PyCallable_Check(previous) || !PyCallable_Check(in_span)) {
        PyErr_SetString(PyExc_TypeError, "RecordFactory: previous and in_span must be callable");
        return NULL;
    }
    RecordFactory *self = (RecordFactory *)type->tp_alloc(type, 0);
    if (self == NULL) {
        return NULL;
    }
    self->previous = Py_NewRef(previous);
    self->span_var = Py_NewRef(span_var);
    self->invalid = Py_NewRef(invalid);
    self->gate = Py_NewRef(gate);
    self->in_span = Py_NewRef(in_span);
    self->vectorcall = record_factory_call;
    return (PyObject *)self;
}

static int
record_factory_traverse(RecordFactory *self, visitproc visit, void *arg)
{
    Py_VISIT(self->previous);
    Py_VISIT(self->span_var);
    Py_VISIT(self->invalid);
    Py_VISIT(self->gate);
    Py_VISIT(self->in_span);
    return 0;
}

static int
record_factory_clear(RecordFactory *self)
{
    Py_CLEAR(self->previous);
    Py_CLEAR(self->span_var);
    Py_CLEAR(self->invalid);
    Py_CLEAR(self->gate);
    Py_CLEAR(self->in_span);
    return 0;
}

static void
record_factory_dealloc(RecordFactory *self)
{
    PyObject_GC_UnTrack(self);
    record_factory_clear(self);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyObject *
record_factory_get_previous(RecordFactory *self, void *closure)
{
    return Py_NewRef(self->previous);
}

static PyGetSetDef record_factory_getset[] = {
    {"previous", (getter)record_factory_get_previous, NULL, "the factory chained to", NULL},
    {NULL},
};

static PyTypeObject RecordFactoryType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "telemetry_run.sdk._speedups.RecordFactory",
    .tp_doc = "RecordFactory(previous, span_var, invalid, gate, in_span): a logging record "
              "factory adding the correlation fields (see telemetry_run.sdk.log_correlation).",
    .tp_basicsize = sizeof(RecordFactory),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_HAVE_VECTORCALL,
    .tp_new = record_factory_new,
    .tp_traverse = (traverseproc)record_factory_traverse,
    .tp_clear = (inquiry)record_factory_clear,
    .tp_dealloc = (destructor)record_factory_dealloc,
    .tp_call = PyVectorcall_Call,
    .tp_vectorcall_offset = offsetof(RecordFactory, vectorcall),
    .tp_getset = record_factory_getset,
};


/* -- ContextStream ----------------------------------------------------------------------- */

/* The twin of ``toolkit._Stream``: same steps, same order, same exceptions. ``hooks`` is the
 * tuple (context_var, span_var, over, failed): the two context variables attach sets, then
 * ``over(call)`` (the stream is exhausted: end the call, report what fails) and
 * ``failed(call, exc, end)`` (a step raised: record it, end the call if ``end``). */
typedef struct {
    PyObject_HEAD
    PyObject *iterator;
    PyObject *close;      /* the iterable's ``close`` or NULL */
    PyObject *call;
    PyObject *hooks;
    int end;
    PyObject *weakrefs;
} ContextStream;

static PyObject *str_context, *str_span, *str_ended, *str_close;

static int
stream_call_ended(PyObject *call)
{
    PyObject *ended = PyObject_GetAttr(call, str_ended);
    if (ended == NULL) {
        return -1;
    }
    int truth = PyObject_IsTrue(ended);
    Py_DECREF(ended);
    return truth;
}

/* ``over(call)`` unless the call ended already; -1 with an exception set when that failed. */
static int
stream_over(ContextStream *self)
{
    int ended = stream_call_ended(self->call);
    if (ended != 0) {
        return ended < 0 ? -1 : 0;
    }
    PyObject *result = PyObject_CallOneArg(PyTuple_GET_ITEM(self->hooks, 2), self->call);
    if (result == NULL) {
        return -1;
    }
    Py_DECREF(result);
    return 0;
}

/* The pending exception, normalized, taken out of the error indicator (a new reference). */
static PyObject *
take_exception(void)
{
#if PY_VERSION_HEX >= 0x030C0000
    return PyErr_GetRaisedException();
#else
    PyObject *type, *value, *traceback;
    PyErr_Fetch(&type, &value, &traceback);
    PyErr_NormalizeException(&type, &value, &traceback);
    if (traceback != NULL && value != NULL) {
        PyException_SetTraceback(value, traceback);
    }
    Py_XDECREF(type);
    Py_XDECREF(traceback);
    return value;
#endif
}

/* Raise ``exc`` again (steals the reference). */
static void
give_exception(PyObject *exc)
{
#if PY_VERSION_HEX >= 0x030C0000
    PyErr_SetRaisedException(exc);
#else
    PyErr_Restore(Py_NewRef((PyObject *)Py_TYPE(exc)), exc, PyException_GetTraceback(exc));
#endif
}

/* The end of a ``finally`` whose body left ``earlier`` pending (stolen; NULL: nothing): when the
 * ``finally`` itself ``failed``, its exception stays raised with ``earlier`` as its context, as
 * in Python; else ``earlier`` is raised again. -1 when an exception is set. */
static int
end_finally(PyObject *earlier, int failed)
{
    if (failed) {
        if (earlier != NULL) {
            PyObject *raised = take_exception();
            PyException_SetContext(raised, earlier);  /* steals earlier */
            give_exception(raised);
        }
        return -1;
    }
    if (earlier != NULL) {
        give_exception(earlier);
        return -1;
    }
    return 0;
}

/* ``failed(call, exc, end)`` for the pending exception, then that exception raised again. */
static void
stream_failed(ContextStream *self)
{
    PyObject *exc = take_exception();
    if (exc == NULL) {
        return;
    }
    PyObject *result = PyObject_CallFunctionObjArgs(PyTuple_GET_ITEM(self->hooks, 3), self->call,
                                                    exc, self->end ? Py_True : Py_False, NULL);
    Py_XDECREF(result);
    end_finally(exc, result == NULL);
}

static PyObject *
context_stream_next(ContextStream *self)
{
    PyObject *call = self->call;
    PyObject *context = PyObject_GetAttr(call, str_context);
    if (context == NULL) {
        return NULL;
    }
    PyObject *context_token = PyContextVar_Set(PyTuple_GET_ITEM(self->hooks, 0), context);
    Py_DECREF(context);
    if (context_token == NULL) {
        return NULL;
    }
    PyObject *item = NULL, *span_token = NULL;
    PyObject *span = PyObject_GetAttr(call, str_span);
    if (span != NULL) {
        span_token = PyContextVar_Set(PyTuple_GET_ITEM(self->hooks, 1), span);
        Py_DECREF(span);
    }
    if (span_token != NULL) {
        item = (*Py_TYPE(self->iterator)->tp_iternext)(self->iterator);
        if (item == NULL) {
            if (!PyErr_Occurred() || PyErr_ExceptionMatches(PyExc_StopIteration)) {
                PyErr_Clear();  /* exhausted: NULL without an exception, unless over() raised */
                if (self->end) {
                    stream_over(self);
                }
            }
            else {
                stream_failed(self);
            }
        }
    }
    /* The resets run whatever happened, keeping the exception pending (``finally``). */
    PyObject *pending = PyErr_Occurred() ? take_exception() : NULL;
    int reset = 0;
    if (span_token != NULL) {
        reset = PyContextVar_Reset(PyTuple_GET_ITEM(self->hooks, 1), span_token);
        Py_DECREF(span_token);
    }
    if (reset == 0) {
        reset = PyContextVar_Reset(PyTuple_GET_ITEM(self->hooks, 0), context_token);
    }
    Py_DECREF(context_token);
    if (end_finally(pending, reset < 0) < 0) {
        Py_XDECREF(item);
        return NULL;
    }
    return item;
}

static PyObject *
context_stream_close(ContextStream *self, PyObject *unused)
{
    PyObject *closed = Py_None;
    if (self->close != NULL) {
        closed = PyObject_CallNoArgs(self->close);
    }
    /* ``finally``: the call ends even when the body's close raised. */
    PyObject *pending = closed == NULL ? take_exception() : NULL;
    if (closed != NULL && closed != Py_None) {
        Py_DECREF(closed);
    }
    if (end_finally(pending, self->end && stream_over(self) < 0) < 0) {
        return NULL;
    }
    Py_RETURN_NONE;
}

static PyObject *
context_stream_new(PyTypeObject *type, PyObject *args, PyObject *kwargs)
{
    static char *names[] = {"iterable", "call", "end", "hooks", NULL};
    PyObject *iterable, *call, *hooks;
    int end;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "OOpO!:ContextStream", names, &iterable, &call,
                                     &end, &PyTuple_Type, &hooks)) {
        return NULL;
    }
    if (PyTuple_GET_SIZE(hooks) != 4 || !PyContextVar_CheckExact(PyTuple_GET_ITEM(hooks, 0))
        || !PyContextVar_CheckExact(PyTuple_GET_ITEM(hooks, 1))) {
        PyErr_SetString(PyExc_TypeError,
                        "ContextStream: hooks must be (context_var, span_var, over, failed)");
        return NULL;
    }
    /* As ``_Stream.__init__``: ``close`` looked up first, then ``iter()``. */
    PyObject *close = PyObject_GetAttr(iterable, str_close);
    if (close == NULL) {
        if (!PyErr_ExceptionMatches(PyExc_AttributeError)) {
            return NULL;
        }
        PyErr_Clear();
    }
    PyObject *iterator = PyObject_GetIter(iterable);
    if (iterator == NULL) {
        Py_XDECREF(close);
        return NULL;
    }
    ContextStream *self = (ContextStream *)type->tp_alloc(type, 0);
    if (self == NULL) {
        Py_DECREF(iterator);
        Py_XDECREF(close);
        return NULL;
    }
    self->iterator = iterator;
    self->close = close == Py_None ? (Py_DECREF(close), (PyObject *)NULL) : close;
    self->call = Py_NewRef(call);
    self->hooks = Py_NewRef(hooks);
    self->end = end;
    return (PyObject *)self;
}

static int
context_stream_traverse(ContextStream *self, visitproc visit, void *arg)
{
    Py_VISIT(self->iterator);
    Py_VISIT(self->close);
    Py_VISIT(self->call);
    Py_VISIT(self->hooks);
    return 0;
}

static int
context_stream_clear(ContextStream *self)
{
    Py_CLEAR(self->iterator);
    Py_CLEAR(self->close);
    Py_CLEAR(self->call);
    Py_CLEAR(self->hooks);
    return 0;
}

static void
context_stream_dealloc(ContextStream *self)
{
    PyObject_GC_UnTrack(self);
    if (self->weakrefs != NULL) {
        PyObject_ClearWeakRefs((PyObject *)self);
    }
    context_stream_clear(self);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyMethodDef context_stream_methods[] = {
    {"close", (PyCFunction)context_stream_close, METH_NOARGS,
     "close the body, then end the call (if the stream ends it and it has not ended)"},
    {NULL},
};

static PyTypeObject ContextStreamType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "telemetry_run.sdk._speedups.ContextStream",
    .tp_doc = "ContextStream(iterable, call, end, hooks): iterable run with call's context "
              "attached around each step (see telemetry_run.instrumentors.toolkit._Stream).",
    .tp_basicsize = sizeof(ContextStream),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .tp_new = context_stream_new,
    .tp_traverse = (traverseproc)context_stream_traverse,
    .tp_clear = (inquiry)context_stream_clear,
    .tp_dealloc = (destructor)context_stream_dealloc,
    .tp_iter = PyObject_SelfIter,
    .tp_iternext = (iternextfunc)context_stream_next,
    .tp_methods = context_stream_methods,
    .tp_weaklistoffset = offsetof(ContextStream, weakrefs),
};

static int
speedups_exec(PyObject *module)
{
    if (str_active == NULL) {
        str_active = PyUnicode_InternFromString("active");
    }
    if (str_context == NULL) {
        str_context = PyUnicode_InternFromString("context");
        str_span = PyUnicode_InternFromString("span");
        str_ended = PyUnicode_InternFromString("_ended");
        str_close = PyUnicode_InternFromString("close");
    }
    if (str_active == NULL || str_context == NULL || str_span == NULL || str_ended == NULL
        || str_close == NULL || PyType_Ready(&RecordFactoryType) < 0
        || PyType_Ready(&ContextStreamType) < 0) {
        return -1;
    }
    if (PyModule_AddObjectRef(module, "ContextStream", (PyObject *)&ContextStreamType) < 0) {
        return -1;
    }
    return PyModule_AddObjectRef(module, "RecordFactory", (PyObject *)&RecordFactoryType);
}

static PyModuleDef_Slot speedups_slots[] = {
    {Py_mod_exec, speedups_exec},
    {0, NULL},
};

static PyMethodDef speedups_methods[] = {
    {"parse_traceparent", parse_traceparent, METH_O,
     "parse_traceparent(header) -> (trace_id, trace_hex, span_id, flags) | None"},
    {"format_traceparent", (PyCFunction)(void (*)(void))format_traceparent, METH_FASTCALL,
     "format_traceparent(trace_hex, span_id, flags) -> str: the traceparent inject writes"},
    {"plain_attributes", plain_attributes, METH_O,
     "plain_attributes(attributes) -> dict | None: a copy when every attribute is plain"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef speedups_module = {
    PyModuleDef_HEAD_INIT,
    .m_methods = speedups_methods,
    .m_name = "telemetry_run.sdk._speedups",
    .m_doc = "Optional native twins of telemetry-run's hottest paths (each has a Python one).",
    .m_size = 0,
    .m_slots = speedups_slots,
};

PyMODINIT_FUNC
PyInit__speedups(void)
{
    return PyModuleDef_Init(&speedups_module);
}
