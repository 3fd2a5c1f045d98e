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
 * call_exit: ``Call.__exit__`` of the instrumentors' toolkit when the call raised nothing: the
 * span's end, the processors' ``on_end``, the end hooks and the detach, in one C call.
 *
 * site_start: ``CallSite.start`` of the toolkit, the start of every traced call, around the
 * site's own callables (carrier, attributes, name) in one C frame.
 *
 * SpanStarter: a tracer's ``start_span`` (``sdk/trace/provider.py``) for its usual case, a span
 * every traced call starts: about 190 bytecodes of the Python method become one C call. What
 * it does not take (a sampler to ask, links, attributes to clean...) goes to the Python method.
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
#ifndef Py_T_OBJECT_EX /* Python 3.11: the member types are structmember.h's */
#include <structmember.h>
#define Py_T_OBJECT_EX T_OBJECT_EX
#define Py_READONLY READONLY
#endif
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


/* -- SpanStarter ------------------------------------------------------------------------- */

/* The span start every traced call makes, ``Tracer.start_span`` of sdk/trace/provider.py, for
 * its usual case: positional arguments, no links, a parent that is none, this SDK's span or a
 * remote context, a sampling decision known from the tracer's tables (no sampler call), a
 * recording span whose trace state is its parent's, and plain attributes. Anything else calls
 * the Python ``start_span`` (``fallback``) before any side effect, so the two make the same
 * spans (the tests run the span tests both ways). Fields of the SDK's slotted classes are read
 * and written at their slot offsets, looked up once by ``configure_span_starter``. */

enum {
    K_RECORDING, K_NON_RECORDING, K_SAMPLED_OUT, K_SPAN_CONTEXT, K_SAMPLING_RESULT, K_SPAN_KEY,
    K_SUPPRESS_KEY, K_CURRENT_VAR, K_SPAN_VAR, K_INTERNAL, K_DROP, K_RECORD_AND_SAMPLE,
    K_SPAN_FLAGS, K_UNSET, K_EMPTY_STATE, K_TIME_NS, K_COUNT
};

static PyObject *starter_consts; /* the tuple given to configure_span_starter, or NULL */

/* Slot offsets: RecordingSpan's fields, NonRecordingSpan's and SampledOutSpan's context,
 * SpanContext's and SamplingResult's fields. */
enum {
    S_ATTRIBUTES, S_CONTEXT, S_END_TIME, S_EXTRA, S_FLAGS, S_KIND, S_NAME, S_PARENT, S_SPAN_ID,
    S_START_TIME, S_STATUS, S_TRACE_ID, S_TRACER, S_NR_CONTEXT, S_SO_CONTEXT, C_TRACE_ID,
    C_TRACE_FLAGS, C_IS_REMOTE, C_TRACE_STATE, C_IS_VALID, R_DECISION, R_ATTRIBUTES,
    R_TRACE_STATE, S_COUNT
};

static Py_ssize_t slot_offsets[S_COUNT];

static PyObject *str_enabled, *str_parent_table, *str_fixed_drops, *str_root_result,
    *str_random_bit, *str_new_trace_id, *str_new_span_id, *str_max_attributes,
    *str_max_attribute_length, *str_started, *str_on_start, *str_get_span_context;

#define CONST(k) PyTuple_GET_ITEM(starter_consts, (k))
#define SLOT(obj, s) (*(PyObject **)((char *)(obj) + slot_offsets[(s)]))

/* The offset of ``type``'s writable object slot ``name``; -1 with an exception otherwise. */
static Py_ssize_t
slot_offset(PyObject *type, const char *name)
{
    PyObject *descr = PyObject_GetAttrString(type, name);
    if (descr == NULL) {
        return -1;
    }
    Py_ssize_t offset = -1;
    if (Py_IS_TYPE(descr, &PyMemberDescr_Type)) {
        PyMemberDef *member = ((PyMemberDescrObject *)descr)->d_member;
        if (member->type == Py_T_OBJECT_EX && !(member->flags & Py_READONLY)) {
            offset = member->offset;
        }
    }
    Py_DECREF(descr);
    if (offset < 0) {
        PyErr_Format(PyExc_TypeError, "%R.%s is not a writable slot", type, name);
    }
    return offset;
}

static PyObject *
configure_span_starter(PyObject *module, PyObject *consts)
{
    if (!PyTuple_CheckExact(consts) || PyTuple_GET_SIZE(consts) != K_COUNT) {
        PyErr_Format(PyExc_TypeError, "configure_span_starter takes a tuple of %d", K_COUNT);
        return NULL;
    }
    for (int k = K_RECORDING; k <= K_SAMPLING_RESULT; k++) {
        if (!PyType_Check(PyTuple_GET_ITEM(consts, k))) {
            PyErr_SetString(PyExc_TypeError, "configure_span_starter: the first five are types");
            return NULL;
        }
    }
    static const struct {
        int index;
        int type;
        const char *name;
    } slots[S_COUNT] = {
        {S_ATTRIBUTES, K_RECORDING, "_attributes"}, {S_CONTEXT, K_RECORDING, "_context"},
        {S_END_TIME, K_RECORDING, "_end_time"}, {S_EXTRA, K_RECORDING, "_extra"},
        {S_FLAGS, K_RECORDING, "_flags"}, {S_KIND, K_RECORDING, "_kind"},
        {S_NAME, K_RECORDING, "_name"}, {S_PARENT, K_RECORDING, "_parent"},
        {S_SPAN_ID, K_RECORDING, "_span_id"}, {S_START_TIME, K_RECORDING, "_start_time"},
        {S_STATUS, K_RECORDING, "_status"}, {S_TRACE_ID, K_RECORDING, "_trace_id"},
        {S_TRACER, K_RECORDING, "_tracer"}, {S_NR_CONTEXT, K_NON_RECORDING, "_context"},
        {S_SO_CONTEXT, K_SAMPLED_OUT, "_context"}, {C_TRACE_ID, K_SPAN_CONTEXT, "trace_id"},
        {C_TRACE_FLAGS, K_SPAN_CONTEXT, "trace_flags"},
        {C_IS_REMOTE, K_SPAN_CONTEXT, "is_remote"},
        {C_TRACE_STATE, K_SPAN_CONTEXT, "trace_state"},
        {C_IS_VALID, K_SPAN_CONTEXT, "is_valid"}, {R_DECISION, K_SAMPLING_RESULT, "decision"},
        {R_ATTRIBUTES, K_SAMPLING_RESULT, "attributes"},
        {R_TRACE_STATE, K_SAMPLING_RESULT, "trace_state"},
    };
    Py_ssize_t offsets[S_COUNT];
    for (int i = 0; i < S_COUNT; i++) {
        offsets[slots[i].index] = slot_offset(PyTuple_GET_ITEM(consts, slots[i].type), slots[i].name);
        if (offsets[slots[i].index] < 0) {
            return NULL;
        }
    }
    memcpy(slot_offsets, offsets, sizeof(offsets));
    Py_XSETREF(starter_consts, Py_NewRef(consts));
    Py_RETURN_NONE;
}

typedef struct {
    PyObject_HEAD
    PyObject *tracer;
    PyObject *attrs;    /* the tracer's ``__dict__`` (NULL without one) */
    PyObject *fallback; /* the Python start_span, bound to the tracer */
    vectorcallfunc vectorcall;
} SpanStarter;

/* ``tracer.<name>`` (a new reference), or NULL with an exception. Read from the tracer's
 * ``__dict__`` where it is (a tenth of a generic attribute look-up): the tracer keeps its
 * state in instance attributes, and its class defines no descriptor of these names. */
static PyObject *
tracer_attr(SpanStarter *self, PyObject *name)
{
    if (self->attrs != NULL) {
        PyObject *value = PyDict_GetItemWithError(self->attrs, name);
        if (value != NULL) {
            return Py_NewRef(value);
        }
        if (PyErr_Occurred()) {
            return NULL;
        }
    }
    return PyObject_GetAttr(self->tracer, name);
}

#define TRACER_ATTR(name) tracer_attr(self, (name))

/* 1: ``tracer.<name>`` is True, 0: anything else, -1 with an exception. */
static int
is_true_attr(SpanStarter *self, PyObject *name)
{
    PyObject *value = tracer_attr(self, name);
    if (value == NULL) {
        return -1;
    }
    int truth = value == Py_True;
    Py_DECREF(value);
    return truth;
}

/* Returns the span, NULL with an exception, or ``Py_NotImplemented`` (borrowed, not to be
 * returned): the Python start_span decides. Nothing is drawn or counted before it says so. */
static PyObject *
starter_fast(SpanStarter *self, PyObject *const *args, Py_ssize_t nargs)
{
    PyObject *name = args[0];
    PyObject *context = nargs > 1 ? args[1] : Py_None;
    PyObject *kind = nargs > 2 ? args[2] : CONST(K_INTERNAL);
    PyObject *attributes = nargs > 3 ? args[3] : Py_None;
    PyObject *start_time = nargs > 5 ? args[5] : Py_None;
    if (nargs > 4 && args[4] != Py_None) {
        return Py_NotImplemented; /* links */
    }
    PyObject *result = Py_NotImplemented;
    PyObject *parent_span = NULL, *parent = NULL, *sampled = NULL, *attrs = NULL;
    PyObject *trace_id = NULL, *span_id = NULL, *time = NULL, *span = NULL;
    int suppressed;
    if (context == Py_None) {
        PyObject *current = NULL;
        if (PyContextVar_Get(CONST(K_SPAN_VAR), Py_None, &parent_span) < 0
            || PyContextVar_Get(CONST(K_CURRENT_VAR), NULL, &current) < 0) {
            result = NULL;
            goto done;
        }
        if (current == NULL || !PyDict_Check(current)) {
            Py_XDECREF(current);
            goto done;
        }
        PyObject *flag = PyDict_GetItemWithError(current, CONST(K_SUPPRESS_KEY));
        suppressed = flag == Py_True;
        Py_DECREF(current);
        if (flag == NULL && PyErr_Occurred()) {
            result = NULL;
            goto done;
        }
    }
    else if (PyDict_Check(context)) {
        parent_span = PyDict_GetItemWithError(context, CONST(K_SPAN_KEY));
        if (parent_span == NULL && PyErr_Occurred()) {
            result = NULL;
            goto done;
        }
        parent_span = Py_NewRef(parent_span != NULL ? parent_span : Py_None);
        PyObject *flag = PyDict_GetItemWithError(context, CONST(K_SUPPRESS_KEY));
        if (flag == NULL && PyErr_Occurred()) {
            result = NULL;
            goto done;
        }
        suppressed = flag == Py_True;
    }
    else {
        goto done;
    }
    if (suppressed) {
        goto done;
    }
    int enabled = is_true_attr(self, str_enabled);
    if (enabled <= 0) {
        result = enabled < 0 ? NULL : Py_NotImplemented;
        goto done;
    }

    /* The parent's SpanContext, as start_span reads it. */
    PyTypeObject *parent_type = Py_TYPE(parent_span);
    if (parent_span == Py_None) {
        parent = NULL;
    }
    else if (parent_type == (PyTypeObject *)CONST(K_RECORDING)
             || parent_type == (PyTypeObject *)CONST(K_SAMPLED_OUT)) {
        parent = SLOT(parent_span, parent_type == (PyTypeObject *)CONST(K_RECORDING)
                                       ? S_CONTEXT : S_SO_CONTEXT);
        if (parent == NULL || parent == Py_None) {
            parent = PyObject_CallMethodNoArgs(parent_span, str_get_span_context);
            if (parent == NULL) {
                result = NULL;
                goto done;
            }
        }
        else {
            Py_INCREF(parent);
        }
    }
    else if (parent_type == (PyTypeObject *)CONST(K_NON_RECORDING)) {
        parent = SLOT(parent_span, S_NR_CONTEXT);
        if (parent == NULL) {
            goto done;
        }
        Py_INCREF(parent);
    }
    else {
        goto done;
    }
    long parent_flags = 0;
    int remote = 0;
    PyObject *parent_state = CONST(K_EMPTY_STATE);
    if (parent != NULL) {
        if (!Py_IS_TYPE(parent, (PyTypeObject *)CONST(K_SPAN_CONTEXT))) {
            goto done;
        }
        PyObject *valid = SLOT(parent, C_IS_VALID);
        PyObject *flags = SLOT(parent, C_TRACE_FLAGS);
        PyObject *is_remote = SLOT(parent, C_IS_REMOTE);
        parent_state = SLOT(parent, C_TRACE_STATE);
        if (valid == NULL || flags == NULL || is_remote == NULL || parent_state == NULL
            || SLOT(parent, C_TRACE_ID) == NULL || !PyLong_Check(flags)) {
            goto done;
        }
        if (parent_type == (PyTypeObject *)CONST(K_NON_RECORDING) && valid != Py_True) {
            if (valid != Py_False) {
                goto done;
            }
            Py_CLEAR(parent); /* an invalid remote context: a root */
            parent_state = CONST(K_EMPTY_STATE);
        }
        else {
            parent_flags = PyLong_AsLong(flags);
            if (parent_flags == -1 && PyErr_Occurred()) {
                result = NULL;
                goto done;
            }
            int truth = PyObject_IsTrue(is_remote);
            if (truth < 0) {
                result = NULL;
                goto done;
            }
            remote = truth;
        }
    }
    long random_bit;
    int which;
    if (parent != NULL) {
        random_bit = parent_flags & 2;
        which = (remote ? 2 : 0) + (int)(parent_flags & 1);
    }
    else {
        PyObject *bit = TRACER_ATTR(str_random_bit);
        if (bit == NULL) {
            result = NULL;
            goto done;
        }
        random_bit = PyLong_Check(bit) ? PyLong_AsLong(bit) : -1;
        Py_DECREF(bit);
        if (random_bit < 0) {
            result = random_bit == -1 && PyErr_Occurred() ? NULL : Py_NotImplemented;
            PyErr_Clear();
            goto done;
        }
        which = 4;
    }

    /* The decision, from the tables only: a sampler to ask is the Python start_span's. */
    PyObject *table = TRACER_ATTR(str_parent_table);
    if (table == NULL) {
        result = NULL;
        goto done;
    }
    if (table != Py_None && which != 4) {
        if (PyTuple_CheckExact(table) && which < PyTuple_GET_SIZE(table)) {
            sampled = Py_NewRef(PyTuple_GET_ITEM(table, which));
        }
        Py_DECREF(table);
        if (sampled == NULL) {
            goto done;
        }
    }
    else {
        Py_DECREF(table);
        PyObject *drops = TRACER_ATTR(str_fixed_drops);
        if (drops == NULL) {
            result = NULL;
            goto done;
        }
        int dropped = PyTuple_CheckExact(drops) && which < PyTuple_GET_SIZE(drops)
                          ? PyObject_IsTrue(PyTuple_GET_ITEM(drops, which)) : 1;
        Py_DECREF(drops);
        if (dropped != 0) {
            result = dropped < 0 ? NULL : Py_NotImplemented;
            goto done;
        }
        if (which != 4) {
            goto done;
        }
        sampled = TRACER_ATTR(str_root_result);
        if (sampled == NULL) {
            result = NULL;
            goto done;
        }
        if (sampled == Py_None) {
            goto done;
        }
    }
    if (!Py_IS_TYPE(sampled, (PyTypeObject *)CONST(K_SAMPLING_RESULT))) {
        goto done;
    }
    PyObject *decision = SLOT(sampled, R_DECISION);
    PyObject *state = SLOT(sampled, R_TRACE_STATE);
    PyObject *extra_attributes = SLOT(sampled, R_ATTRIBUTES);
    if (decision == NULL || decision == CONST(K_DROP) || state == NULL
        || extra_attributes == NULL) {
        goto done;
    }
    if (state != Py_None && state != parent_state) {
        goto done; /* a trace state of the sampler's own: the span keeps it apart */
    }
    int more = PyObject_IsTrue(extra_attributes);
    if (more != 0) {
        result = more < 0 ? NULL : Py_NotImplemented;
        goto done;
    }

    /* The attributes: none, or plain ones within the limits (else clean_attributes cleans). */
    if (attributes == Py_None || (PyDict_CheckExact(attributes) && PyDict_GET_SIZE(attributes) == 0)) {
        attrs = PyDict_New();
        if (attrs == NULL) {
            result = NULL;
            goto done;
        }
    }
    else {
        PyObject *length = TRACER_ATTR(str_max_attribute_length);
        if (length == NULL) {
            result = NULL;
            goto done;
        }
        int unbounded = length == Py_None;
        Py_DECREF(length);
        if (!unbounded || !PyDict_CheckExact(attributes)) {
            goto done;
        }
        PyObject *most = TRACER_ATTR(str_max_attributes);
        if (most == NULL) {
            result = NULL;
            goto done;
        }
        Py_ssize_t limit = PyLong_Check(most) ? PyLong_AsSsize_t(most) : -1;
        Py_DECREF(most);
        if (limit == -1 && PyErr_Occurred()) {
            result = NULL;
            goto done;
        }
        if (PyDict_GET_SIZE(attributes) > limit) {
            goto done;
        }
        attrs = plain_attributes(NULL, attributes);
        if (attrs == NULL) {
            result = NULL;
            goto done;
        }
        if (attrs == Py_None) {
            Py_CLEAR(attrs);
            goto done;
        }
    }

    /* Decided: from here the span is made (ids drawn in start_span's order). */
    PyObject *flags_table = CONST(K_SPAN_FLAGS);
    long flag_index = random_bit | (decision == CONST(K_RECORD_AND_SAMPLE) ? 1 : 0);
    if (!PyTuple_CheckExact(flags_table) || flag_index >= PyTuple_GET_SIZE(flags_table)) {
        goto done;
    }
    if (parent != NULL) {
        trace_id = Py_NewRef(SLOT(parent, C_TRACE_ID));
    }
    else {
        PyObject *draw = TRACER_ATTR(str_new_trace_id);
        if (draw == NULL) {
            result = NULL;
            goto done;
        }
        trace_id = PyObject_CallNoArgs(draw);
        Py_DECREF(draw);
        if (trace_id == NULL) {
            result = NULL;
            goto done;
        }
        int truth = PyObject_IsTrue(trace_id);
        if (truth <= 0) {
            Py_SETREF(trace_id, truth < 0 ? NULL : PyLong_FromLong(1));
            if (trace_id == NULL) {
                result = NULL;
                goto done;
            }
        }
    }
    PyObject *draw = TRACER_ATTR(str_new_span_id);
    if (draw == NULL) {
        result = NULL;
        goto done;
    }
    span_id = PyObject_CallNoArgs(draw);
    Py_DECREF(draw);
    if (span_id == NULL) {
        result = NULL;
        goto done;
    }
    int truth = PyObject_IsTrue(span_id);
    if (truth <= 0) {
        Py_SETREF(span_id, truth < 0 ? NULL : PyLong_FromLong(1));
        if (span_id == NULL) {
            result = NULL;
            goto done;
        }
    }
    if (start_time == Py_None) {
        time = PyObject_CallNoArgs(CONST(K_TIME_NS));
        if (time == NULL) {
            result = NULL;
            goto done;
        }
    }
    else {
        time = Py_NewRef(start_time);
    }
    PyTypeObject *span_type = (PyTypeObject *)CONST(K_RECORDING);
    span = span_type->tp_alloc(span_type, 0);
    if (span == NULL) {
        result = NULL;
        goto done;
    }
    SLOT(span, S_TRACER) = Py_NewRef(self->tracer);
    SLOT(span, S_NAME) = Py_NewRef(name);
    SLOT(span, S_TRACE_ID) = Py_NewRef(trace_id);
    SLOT(span, S_SPAN_ID) = Py_NewRef(span_id);
    SLOT(span, S_FLAGS) = Py_NewRef(PyTuple_GET_ITEM(flags_table, flag_index));
    SLOT(span, S_CONTEXT) = Py_NewRef(Py_None);
    SLOT(span, S_PARENT) = Py_NewRef(parent != NULL ? parent : Py_None);
    SLOT(span, S_KIND) = Py_NewRef(kind);
    SLOT(span, S_END_TIME) = Py_NewRef(Py_None);
    SLOT(span, S_STATUS) = Py_NewRef(CONST(K_UNSET));
    SLOT(span, S_EXTRA) = Py_NewRef(Py_None);
    SLOT(span, S_ATTRIBUTES) = Py_NewRef(attrs);
    SLOT(span, S_START_TIME) = Py_NewRef(time);

    PyObject *count = TRACER_ATTR(str_started);
    PyObject *counted = count != NULL ? PyObject_CallNoArgs(count) : NULL;
    Py_XDECREF(count);
    if (counted == NULL) {
        Py_CLEAR(span);
        result = NULL;
        goto done;
    }
    Py_DECREF(counted);
    PyObject *on_start = TRACER_ATTR(str_on_start);
    if (on_start == NULL) {
        Py_CLEAR(span);
        result = NULL;
        goto done;
    }
    if (on_start != Py_None) {
        PyObject *started = PyObject_CallFunctionObjArgs(on_start, span, context, NULL);
        if (started == NULL) {
            Py_DECREF(on_start);
            Py_CLEAR(span);
            result = NULL;
            goto done;
        }
        Py_DECREF(started);
    }
    Py_DECREF(on_start);
    result = span;
    span = NULL;
done:
    Py_XDECREF(parent_span);
    Py_XDECREF(parent);
    Py_XDECREF(sampled);
    Py_XDECREF(attrs);
    Py_XDECREF(trace_id);
    Py_XDECREF(span_id);
    Py_XDECREF(time);
    Py_XDECREF(span);
    return result;
}

static PyObject *
starter_call(PyObject *op, PyObject *const *args, size_t nargsf, PyObject *kwnames)
{
    SpanStarter *self = (SpanStarter *)op;
    Py_ssize_t nargs = PyVectorcall_NARGS(nargsf);
    if (kwnames == NULL && nargs >= 1 && nargs <= 6 && starter_consts != NULL) {
        PyObject *span = starter_fast(self, args, nargs);
        if (span != Py_NotImplemented) {
            return span;
        }
    }
    return PyObject_Vectorcall(self->fallback, args, nargsf, kwnames);
}

static PyObject *
starter_new(PyTypeObject *type, PyObject *args, PyObject *kwargs)
{
    PyObject *tracer, *fallback;
    if (kwargs != NULL && PyDict_GET_SIZE(kwargs) != 0) {
        PyErr_SetString(PyExc_TypeError, "SpanStarter() takes no keyword arguments");
        return NULL;
    }
    if (!PyArg_UnpackTuple(args, "SpanStarter", 2, 2, &tracer, &fallback)) {
        return NULL;
    }
    if (!PyCallable_Check(fallback)) {
        PyErr_SetString(PyExc_TypeError, "SpanStarter(tracer, fallback): fallback is called");
        return NULL;
    }
    SpanStarter *self = (SpanStarter *)type->tp_alloc(type, 0);
    if (self == NULL) {
        return NULL;
    }
    self->tracer = Py_NewRef(tracer);
    self->fallback = Py_NewRef(fallback);
    self->attrs = PyObject_GenericGetDict(tracer, NULL);
    if (self->attrs == NULL) {
        PyErr_Clear(); /* a tracer without __dict__: its attributes are looked up each time */
    }
    self->vectorcall = starter_call;
    return (PyObject *)self;
}

static int
starter_traverse(SpanStarter *self, visitproc visit, void *arg)
{
    Py_VISIT(self->tracer);
    Py_VISIT(self->attrs);
    Py_VISIT(self->fallback);
    return 0;
}

static int
starter_clear(SpanStarter *self)
{
    Py_CLEAR(self->tracer);
    Py_CLEAR(self->attrs);
    Py_CLEAR(self->fallback);
    return 0;
}

static void
starter_dealloc(SpanStarter *self)
{
    PyObject_GC_UnTrack(self);
    starter_clear(self);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyTypeObject SpanStarterType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "telemetry_run.sdk._speedups.SpanStarter",
    .tp_doc = "SpanStarter(tracer, fallback): the tracer's start_span; its usual case in C",
    .tp_basicsize = sizeof(SpanStarter),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_HAVE_VECTORCALL,
    .tp_new = starter_new,
    .tp_call = PyVectorcall_Call,
    .tp_vectorcall_offset = offsetof(SpanStarter, vectorcall),
    .tp_traverse = (traverseproc)starter_traverse,
    .tp_clear = (inquiry)starter_clear,
    .tp_dealloc = (destructor)starter_dealloc,
};


/* -- call_exit ---------------------------------------------------------------------------- */

/* ``Call.__exit__`` of instrumentors/toolkit.py when the call raised nothing: end the call
 * (its span: the end time, the count, the processors' ``on_end``; then the end hooks) unless a
 * stream or a callback ends it, then detach its context. Five Python frames a traced call
 * leaves through become one C call. A call that raised, a subclass of ``Call`` overriding
 * ``end``, a span other than this SDK's recording one and anything unexpected take the Python
 * ``__exit__``; each
 * failure is reported by the Python helper ``failed(kind, owner, exc)`` as the Python steps
 * report it. Installed on ``Call`` as a method descriptor by ``call_exit_for``. */

/* X_HOOKS: the toolkit module's globals, where ``CALL_END_HOOKS`` is read at each end. */
enum {
    X_CALL, X_TOKEN, X_HOOKS, X_FALLBACK, X_FAILED, X_DETACH, X_CURRENT_VAR, X_SPAN_VAR,
    X_END_FALLBACK, X_DETACH_FALLBACK, X_COUNT
};
enum { A_DEFERRED, A_ENDED, A_TOKEN, A_EXCEPTION, A_SPAN, T_CONTEXT, T_SPAN, A_COUNT };

static PyObject *exit_consts;
static PyObject *native_end; /* the descriptor ``call_exit_for`` installs as ``Call.end`` */
static Py_ssize_t exit_offsets[A_COUNT];
static PyObject *str_ended_count, *str_on_end, *str_end, *str_hook, *str_end_kind,
    *str_on_end_kind, *str_detach_kind, *str_call_end_hooks;

#define XCONST(k) PyTuple_GET_ITEM(exit_consts, (k))
#define ASLOT(obj, s) (*(PyObject **)((char *)(obj) + exit_offsets[(s)]))

/* ``obj.<name>`` from its ``__dict__`` where it is, else looked up (a new reference). */
static PyObject *
dict_attr(PyObject *obj, PyObject *name)
{
    PyObject *dict = PyObject_GenericGetDict(obj, NULL);
    if (dict == NULL) {
        PyErr_Clear();
        return PyObject_GetAttr(obj, name);
    }
    PyObject *value = PyDict_GetItemWithError(dict, name);
    Py_DECREF(dict);
    if (value != NULL) {
        return Py_NewRef(value);
    }
    return PyErr_Occurred() ? NULL : PyObject_GetAttr(obj, name);
}

/* ``failed(kind, owner, exc)`` for the pending Exception; 0 when reported, -1 with an
 * exception set when it is no Exception (raised again) or the report itself raised. */
static int
report_failure(PyObject *kind, PyObject *owner)
{
    PyObject *exc = take_exception();
    if (exc == NULL) {
        return 0;
    }
    if (!PyErr_GivenExceptionMatches(exc, PyExc_Exception)) {
        give_exception(exc);
        return -1;
    }
    PyObject *result = PyObject_CallFunctionObjArgs(XCONST(X_FAILED), kind, owner, exc, NULL);
    Py_DECREF(exc);
    if (result == NULL) {
        return -1;
    }
    Py_DECREF(result);
    return 0;
}

static PyObject *recording_end; /* ``RecordingSpan.end`` as ``call_exit_for`` found it */

/* ``RecordingSpan.end()`` for a span without ``_extra``, else the span's own ``end`` (also
 * when ``RecordingSpan.end`` was replaced since: a test's or a tool's patch is honoured). */
static int
end_span(PyObject *span)
{
    if (!Py_IS_TYPE(span, (PyTypeObject *)CONST(K_RECORDING))
        || _PyType_Lookup(Py_TYPE(span), str_end) != recording_end
        || SLOT(span, S_END_TIME) != Py_None
        || SLOT(span, S_EXTRA) != Py_None || SLOT(span, S_TRACER) == NULL) {
        PyObject *result = PyObject_CallMethodNoArgs(span, str_end);
        Py_XDECREF(result);
        return result == NULL ? -1 : 0;
    }
    PyObject *now = PyObject_CallNoArgs(CONST(K_TIME_NS));
    if (now == NULL) {
        return -1;
    }
    Py_SETREF(SLOT(span, S_END_TIME), now);
    PyObject *tracer = Py_NewRef(SLOT(span, S_TRACER));
    PyObject *count = dict_attr(tracer, str_ended_count);
    PyObject *counted = count != NULL ? PyObject_CallNoArgs(count) : NULL;
    Py_XDECREF(count);
    if (counted == NULL) {
        Py_DECREF(tracer);
        return -1;
    }
    Py_DECREF(counted);
    PyObject *on_end = dict_attr(tracer, str_on_end);
    Py_DECREF(tracer);
    if (on_end == NULL) {
        return -1;
    }
    PyObject *result = PyObject_CallOneArg(on_end, span);
    Py_DECREF(on_end);
    if (result == NULL) {
        return report_failure(str_on_end_kind, span); /* a processor's bug: reported */
    }
    Py_DECREF(result);
    return 0;
}

/* ``Call.end()`` of a call not ended yet: -1 with an exception set when a step failed. */
static int
end_call(PyObject *call)
{
    Py_SETREF(ASLOT(call, A_ENDED), Py_NewRef(Py_True));
    PyObject *span = ASLOT(call, A_SPAN);
    if (span == NULL) {
        PyErr_SetString(PyExc_AttributeError, "span");
        return -1;
    }
    Py_INCREF(span);
    int ended = end_span(span);
    Py_DECREF(span);
    if (ended < 0) {
        return -1;
    }
    /* ``CALL_END_HOOKS`` as the module holds it now (a test may replace the list). */
    PyObject *hooks = PyDict_GetItemWithError(XCONST(X_HOOKS), str_call_end_hooks);
    if (hooks == NULL) {
        if (!PyErr_Occurred()) {
            PyErr_SetString(PyExc_NameError, "CALL_END_HOOKS");
        }
        return -1;
    }
    hooks = PySequence_Fast(hooks, "CALL_END_HOOKS must be iterable");
    if (hooks == NULL) {
        return -1;
    }
    for (Py_ssize_t i = 0; i < PySequence_Fast_GET_SIZE(hooks); i++) {
        PyObject *hook = Py_NewRef(PySequence_Fast_GET_ITEM(hooks, i));
        PyObject *result = PyObject_CallOneArg(hook, call);
        Py_DECREF(hook);
        if (result == NULL) {
            if (report_failure(str_hook, call) < 0) {
                Py_DECREF(hooks);
                return -1;
            }
        }
        else {
            Py_DECREF(result);
        }
    }
    Py_DECREF(hooks);
    Py_SETREF(ASLOT(call, A_EXCEPTION), Py_NewRef(Py_None));
    return 0;
}

/* ``detach(token)`` of the call's token, if any: -1 with an exception set when it failed. */
static int
detach_call(PyObject *call)
{
    PyObject *token = ASLOT(call, A_TOKEN);
    if (token == NULL || token == Py_None) {
        return 0;
    }
    token = Py_NewRef(token);
    Py_SETREF(ASLOT(call, A_TOKEN), Py_NewRef(Py_None));
    int failed = 0;
    PyObject *context_token = Py_IS_TYPE(token, (PyTypeObject *)XCONST(X_TOKEN))
                                  ? ASLOT(token, T_CONTEXT) : NULL;
    PyObject *span_token = context_token != NULL ? ASLOT(token, T_SPAN) : NULL;
    if (span_token == NULL) { /* not our token as we know it: the Python detach says */
        PyObject *result = PyObject_CallOneArg(XCONST(X_DETACH), token);
        Py_XDECREF(result);
        failed = result == NULL;
    }
    else if (PyContextVar_Reset(XCONST(X_SPAN_VAR), span_token) < 0
             || PyContextVar_Reset(XCONST(X_CURRENT_VAR), context_token) < 0) {
        /* detach's tolerance: another context's token, or one detached twice, is logged */
        if (PyErr_ExceptionMatches(PyExc_ValueError) || PyErr_ExceptionMatches(PyExc_RuntimeError)) {
            failed = report_failure(str_detach_kind, token) < 0;
        }
        else {
            failed = 1;
        }
    }
    Py_DECREF(token);
    return failed ? -1 : 0;
}

/* A ``Call`` whose class keeps ``Call.end`` as it is (the class itself or a subclass that
 * does not override it: WSGI, ASGI and gRPC server calls), so the native end is its end. */
static int
ends_natively(PyObject *call)
{
    PyTypeObject *type = Py_TYPE(call);
    if (type == (PyTypeObject *)XCONST(X_CALL)) {
        return 1;
    }
    return native_end != NULL && PyType_IsSubtype(type, (PyTypeObject *)XCONST(X_CALL))
           && _PyType_Lookup(type, str_end) == native_end;
}

/* ``Call.end()``: the span's end and the end hooks, once. A call whose ``_ended`` is not a
 * bool (unset, or set to something else) takes the Python ``end``. */
static PyObject *
call_end(PyObject *self, PyObject *unused)
{
    PyObject *ended = exit_consts != NULL && starter_consts != NULL ? ASLOT(self, A_ENDED) : NULL;
    if (ended != Py_True && ended != Py_False) {
        return PyObject_CallOneArg(XCONST(X_END_FALLBACK), self);
    }
    if (ended == Py_False && end_call(self) < 0) {
        return NULL;
    }
    Py_RETURN_NONE;
}

/* ``Call.detach()``: leave the call's context; a call without the slot set takes Python's. */
static PyObject *
call_detach(PyObject *self, PyObject *unused)
{
    if (exit_consts == NULL || ASLOT(self, A_TOKEN) == NULL) {
        return PyObject_CallOneArg(XCONST(X_DETACH_FALLBACK), self);
    }
    if (detach_call(self) < 0) {
        return NULL;
    }
    Py_RETURN_NONE;
}

static PyObject *
call_exit(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    if (exit_consts == NULL || starter_consts == NULL || nargs != 3 || args[1] != Py_None
        || !ends_natively(self)
        || (ASLOT(self, A_DEFERRED) != Py_True && ASLOT(self, A_DEFERRED) != Py_False)
        || (ASLOT(self, A_ENDED) != Py_True && ASLOT(self, A_ENDED) != Py_False)) {
        PyObject *stack[4] = {self, NULL, NULL, NULL};
        if (nargs > 3) {
            PyErr_SetString(PyExc_TypeError, "__exit__ takes 3 arguments");
            return NULL;
        }
        for (Py_ssize_t i = 0; i < nargs; i++) {
            stack[i + 1] = args[i];
        }
        return PyObject_Vectorcall(XCONST(X_FALLBACK), stack, (size_t)nargs + 1, NULL);
    }
    PyObject *pending = NULL; /* an exception the end let through, raised after the detach */
    if (ASLOT(self, A_DEFERRED) == Py_False && ASLOT(self, A_ENDED) == Py_False) {
        if (end_call(self) < 0 && report_failure(str_end_kind, self) < 0) {
            pending = take_exception();
        }
    }
    if (detach_call(self) < 0) {
        end_finally(pending, 1);
        return NULL;
    }
    if (pending != NULL) {
        give_exception(pending);
        return NULL;
    }
    Py_RETURN_NONE;
}

static PyMethodDef call_exit_def = {
    "__exit__", (PyCFunction)(void (*)(void))call_exit, METH_FASTCALL,
    "__exit__(exc_type, exc, tb): ends the call (unless deferred) and detaches its context",
};

static PyMethodDef call_end_def = {
    "end", call_end, METH_NOARGS, "end(): end the span once, then run CALL_END_HOOKS",
};

static PyMethodDef call_detach_def = {
    "detach", call_detach, METH_NOARGS, "detach(): leave the call's context; idempotent",
};

static PyObject *
call_exit_for(PyObject *module, PyObject *consts)
{
    if (starter_consts == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "call_exit_for needs configure_span_starter first");
        return NULL;
    }
    if (!PyTuple_CheckExact(consts) || PyTuple_GET_SIZE(consts) != X_COUNT
        || !PyType_Check(PyTuple_GET_ITEM(consts, X_CALL))
        || !PyType_Check(PyTuple_GET_ITEM(consts, X_TOKEN))
        || !PyDict_CheckExact(PyTuple_GET_ITEM(consts, X_HOOKS))) {
        PyErr_Format(PyExc_TypeError, "call_exit_for takes a tuple of %d", X_COUNT);
        return NULL;
    }
    static const struct {
        int index;
        int type;
        const char *name;
    } slots[A_COUNT] = {
        {A_DEFERRED, X_CALL, "_deferred"}, {A_ENDED, X_CALL, "_ended"},
        {A_TOKEN, X_CALL, "_token"}, {A_EXCEPTION, X_CALL, "exception"},
        {A_SPAN, X_CALL, "span"}, {T_CONTEXT, X_TOKEN, "_context"}, {T_SPAN, X_TOKEN, "_span"},
    };
    Py_ssize_t offsets[A_COUNT];
    for (int i = 0; i < A_COUNT; i++) {
        offsets[slots[i].index] = slot_offset(PyTuple_GET_ITEM(consts, slots[i].type), slots[i].name);
        if (offsets[slots[i].index] < 0) {
            return NULL;
        }
    }
    PyTypeObject *call_type = (PyTypeObject *)PyTuple_GET_ITEM(consts, X_CALL);
    PyObject *exit = PyDescr_NewMethod(call_type, &call_exit_def);
    PyObject *end = PyDescr_NewMethod(call_type, &call_end_def);
    PyObject *detach = PyDescr_NewMethod(call_type, &call_detach_def);
    PyObject *methods = exit != NULL && end != NULL && detach != NULL
                            ? PyTuple_Pack(3, exit, end, detach) : NULL;
    Py_XDECREF(exit);
    Py_XDECREF(detach);
    if (methods == NULL) {
        Py_XDECREF(end);
        return NULL;
    }
    PyObject *span_end = _PyType_Lookup((PyTypeObject *)CONST(K_RECORDING), str_end);
    if (span_end == NULL) {
        Py_DECREF(methods);
        Py_DECREF(end);
        PyErr_SetString(PyExc_TypeError, "call_exit_for: RecordingSpan has no end");
        return NULL;
    }
    memcpy(exit_offsets, offsets, sizeof(offsets));
    Py_XSETREF(exit_consts, Py_NewRef(consts));
    Py_XSETREF(native_end, end);
    Py_XSETREF(recording_end, Py_NewRef(span_end));
    return methods;
}


/* -- site_start ---------------------------------------------------------------------------- */

/* ``CallSite.start(*args)`` of instrumentors/toolkit.py, the start of every traced call: the
 * gate, the carrier, the parent (extracted for a server, the current context for a client),
 * the site's attribute and name builders, the span, the call's context, the trace context
 * injected, the ``Call`` and its attach, in one C frame around the site's own callables. A
 * keyword argument, an excluded-URL check, header capture and a subclass of ``CallSite`` take
 * the Python ``start``; a step that fails is reported as the Python one reports it. Installed
 * on ``CallSite`` as a method descriptor by ``site_start_for``. */

/* Y_PERF_COUNTER: the toolkit module's globals, where ``perf_counter`` is read at each start. */
enum {
    Y_SITE, Y_CALL, Y_CONTEXT, Y_FALLBACK, Y_FAILED, Y_GET_CURRENT, Y_EXTRACT, Y_INJECT,
    Y_DEFAULT_SETTER, Y_PERF_COUNTER, Y_GATE, Y_GATE_GLOBALS, Y_IS_SUPPRESSED, Y_WSGI_GETTER,
    Y_TEXTMAP_GLOBALS, Y_BAGGAGE_KEY, Y_COUNT
};
enum {
    B_GATED, B_ENABLED, B_EXCLUDED, B_REQUEST_HEADERS, B_CARRIER, B_LAYER_KEY, B_INCOMING,
    B_FALLS_BACK, B_GETTER, B_ATTRIBUTES, B_SPAN_NAME, B_TRACER, B_KIND, B_SETTER, B_CALL_TYPE,
    C_SITE, C_SPAN, C_CONTEXT, C_ATTRIBUTES, C_STATUS_CODE, C_EXCEPTION_RECORDED, C_EXCEPTION,
    C_ROUTE, C_STARTED, C_TOKEN, C_ENDED, C_DEFERRED, B_COUNT
};

static PyObject *site_consts;
static Py_ssize_t site_offsets[B_COUNT];
static PyObject *str_start_span, *str_inject_nested, *str_token, *str_perf_counter, *str_init,
    *str_is_suppressed, *str_global, *str_default, *str_environ_traceparent, *str_environ_baggage,
    *str_traceparent;

#define YCONST(k) PyTuple_GET_ITEM(site_consts, (k))
#define BSLOT(obj, s) (*(PyObject **)((char *)(obj) + site_offsets[(s)]))

/* 1 when ``extract(carrier, context, getter)`` would give ``context`` as it is without a
 * look: a WSGI environ (exactly a dict, read by the WSGI getter) holding neither header of
 * the default propagators while they are the global ones (``_textmap.extract``'s own check,
 * made here to spare the call). 0 otherwise, -1 with an exception. */
static int
quiet_environ(PyObject *carrier, PyObject *getter)
{
    if (!PyDict_CheckExact(carrier) || !Py_IS_TYPE(getter, (PyTypeObject *)YCONST(Y_WSGI_GETTER))) {
        return 0;
    }
    PyObject *textmap = YCONST(Y_TEXTMAP_GLOBALS);
    PyObject *global = PyDict_GetItemWithError(textmap, str_global);
    PyObject *known = global != NULL ? PyDict_GetItemWithError(textmap, str_default) : NULL;
    if (known == NULL || global == Py_None || !PyTuple_Check(known) || PyTuple_GET_SIZE(known) < 1
        || PyTuple_GET_ITEM(known, 0) != global) {
        return PyErr_Occurred() ? -1 : 0;
    }
    int present = PyDict_Contains(carrier, str_environ_traceparent);
    if (present == 0) {
        present = PyDict_Contains(carrier, str_environ_baggage);
    }
    return present < 0 ? -1 : !present;
}

/* ``get_current()``: the current context, holding the current span (a new reference). */
static PyObject *
current_context(void)
{
    PyObject *context = NULL, *span = NULL;
    if (PyContextVar_Get(CONST(K_CURRENT_VAR), NULL, &context) < 0
        || PyContextVar_Get(CONST(K_SPAN_VAR), Py_None, &span) < 0) {
        Py_XDECREF(context);
        return NULL;
    }
    if (context != NULL && PyDict_Check(context)) {
        PyObject *held = PyDict_GetItemWithError(context, CONST(K_SPAN_KEY));
        if ((held != NULL ? held : Py_None) == span && !PyErr_Occurred()) {
            Py_DECREF(span);
            return context;
        }
    }
    Py_XDECREF(context);
    Py_DECREF(span);
    if (PyErr_Occurred()) {
        return NULL;
    }
    return PyObject_CallNoArgs(YCONST(Y_GET_CURRENT)); /* the span var and context disagree */
}

/* ``f(*args)`` or ``f(first, *args)`` with the call's positional arguments. */
static PyObject *
call_with(PyObject *f, PyObject *first, PyObject *const *args, Py_ssize_t nargs)
{
    PyObject *small[8];
    PyObject **stack = small;
    if (nargs + 2 > 8) {
        stack = PyMem_Malloc((size_t)(nargs + 2) * sizeof(PyObject *));
        if (stack == NULL) {
            return PyErr_NoMemory();
        }
    }
    Py_ssize_t n = 0;
    stack[n++] = NULL; /* PY_VECTORCALL_ARGUMENTS_OFFSET's slot */
    if (first != NULL) {
        stack[n++] = first;
    }
    for (Py_ssize_t i = 0; i < nargs; i++) {
        stack[n++] = args[i];
    }
    PyObject *result = PyObject_Vectorcall(f, stack + 1, (size_t)(n - 1) | PY_VECTORCALL_ARGUMENTS_OFFSET, NULL);
    if (stack != small) {
        PyMem_Free(stack);
    }
    return result;
}

static PyObject *call_init; /* ``Call.__init__``, the function */

/* A class made as ``Call`` is: ``Call`` itself, or a subclass keeping its ``__new__`` and
 * ``__init__`` under the usual metaclass (WSGI, ASGI and gRPC server calls). */
static int
made_as_call(PyObject *call_type)
{
    PyTypeObject *base = (PyTypeObject *)YCONST(Y_CALL);
    if (call_type == (PyObject *)base) {
        return 1;
    }
    if (!PyType_Check(call_type)) {
        return 0;
    }
    PyTypeObject *type = (PyTypeObject *)call_type;
    return Py_IS_TYPE(call_type, &PyType_Type) && PyType_IsSubtype(type, base)
           && type->tp_new == base->tp_new && type->tp_alloc == base->tp_alloc
           && _PyType_Lookup(type, str_init) == call_init;
}

/* The Call for ``span``: filled here for a class made as ``Call`` is, else its class called. */
static PyObject *
new_call(PyObject *site, PyObject *span, PyObject *context, PyObject *attributes)
{
    PyObject *call_type = BSLOT(site, B_CALL_TYPE);
    if (!made_as_call(call_type)) {
        return PyObject_CallFunctionObjArgs(call_type, site, span, context, attributes, NULL);
    }
    /* ``perf_counter`` as the toolkit module holds it now (a test may replace it). */
    PyObject *clock = PyDict_GetItemWithError(YCONST(Y_PERF_COUNTER), str_perf_counter);
    if (clock == NULL) {
        if (!PyErr_Occurred()) {
            PyErr_SetString(PyExc_NameError, "perf_counter");
        }
        return NULL;
    }
    PyObject *started = PyObject_CallNoArgs(clock);
    if (started == NULL) {
        return NULL;
    }
    PyTypeObject *type = (PyTypeObject *)call_type;
    PyObject *call = type->tp_alloc(type, 0);
    if (call == NULL) {
        Py_DECREF(started);
        return NULL;
    }
    BSLOT(call, C_SITE) = Py_NewRef(site);
    BSLOT(call, C_SPAN) = Py_NewRef(span);
    BSLOT(call, C_CONTEXT) = Py_NewRef(context);
    BSLOT(call, C_ATTRIBUTES) = Py_NewRef(attributes);
    BSLOT(call, C_STATUS_CODE) = Py_NewRef(Py_None);
    BSLOT(call, C_EXCEPTION_RECORDED) = Py_NewRef(Py_False);
    BSLOT(call, C_EXCEPTION) = Py_NewRef(Py_None);
    BSLOT(call, C_ROUTE) = Py_NewRef(Py_None);
    BSLOT(call, C_STARTED) = started;
    BSLOT(call, C_TOKEN) = Py_NewRef(Py_None);
    BSLOT(call, C_ENDED) = Py_NewRef(Py_False);
    BSLOT(call, C_DEFERRED) = Py_NewRef(Py_False);
    return call;
}

/* ``inject_started(carrier, span, context, setter)`` of sdk/propagation/tracecontext.py for
 * its usual case, written here: a dict carrier and the default setter, the default propagators
 * global, a sampled span of ours whose trace state is empty (no state of its own, its parent's
 * empty) and no baggage in the call's context: only ``traceparent`` to write. 1 when written,
 * 0 when the Python function must run (nothing written), -1 with an exception. */
static int
quick_inject(PyObject *carrier, PyObject *span, PyObject *context, PyObject *setter)
{
    static const char digits[] = "0123456789abcdef";
    if (!PyDict_CheckExact(carrier) || setter != YCONST(Y_DEFAULT_SETTER)
        || !Py_IS_TYPE(span, (PyTypeObject *)CONST(K_RECORDING))) {
        return 0;
    }
    PyObject *textmap = YCONST(Y_TEXTMAP_GLOBALS);
    PyObject *global = PyDict_GetItemWithError(textmap, str_global);
    PyObject *known = global != NULL ? PyDict_GetItemWithError(textmap, str_default) : NULL;
    if (known == NULL || global == Py_None || !PyTuple_Check(known) || PyTuple_GET_SIZE(known) < 3
        || PyTuple_GET_ITEM(known, 0) != global) {
        return PyErr_Occurred() ? -1 : 0;
    }
    PyObject *extra = SLOT(span, S_EXTRA), *parent = SLOT(span, S_PARENT);
    PyObject *trace = SLOT(span, S_TRACE_ID), *span_id = SLOT(span, S_SPAN_ID);
    PyObject *flags = SLOT(span, S_FLAGS);
    if (extra != Py_None || parent == NULL || trace == NULL || span_id == NULL || flags == NULL
        || !PyLong_CheckExact(trace) || !PyLong_CheckExact(span_id) || !PyLong_Check(flags)) {
        return 0;
    }
    if (parent != Py_None && (!Py_IS_TYPE(parent, (PyTypeObject *)CONST(K_SPAN_CONTEXT))
                              || SLOT(parent, C_TRACE_STATE) != CONST(K_EMPTY_STATE))) {
        return 0;
    }
    PyObject *baggage = PyDict_GetItemWithError(context, YCONST(Y_BAGGAGE_KEY));
    if (baggage != NULL || PyErr_Occurred()) {
        return PyErr_Occurred() ? -1 : 0;
    }
    /* The ids as 16 and 8 bytes, as ``to_bytes`` gives them; anything out of range: Python's. */
    PyObject *sixty_four = PyLong_FromLong(64);
    PyObject *high_part = sixty_four != NULL ? PyNumber_Rshift(trace, sixty_four) : NULL;
    Py_XDECREF(sixty_four);
    if (high_part == NULL) {
        return -1;
    }
    unsigned long long high = PyLong_AsUnsignedLongLong(high_part);
    Py_DECREF(high_part);
    unsigned long long low = PyLong_AsUnsignedLongLongMask(trace);
    unsigned long long id = PyLong_AsUnsignedLongLong(span_id);
    long flag_bits = PyLong_AsLong(flags);
    if (PyErr_Occurred()) { /* negative, or beyond 128 or 64 bits: Python reports it */
        PyErr_Clear();
        return 0;
    }
    PyObject *header = PyUnicode_New(55, 127);
    if (header == NULL) {
        return -1;
    }
    Py_UCS1 *out = PyUnicode_1BYTE_DATA(header);
    out[0] = '0';
    out[1] = '0';
    out[2] = '-';
    for (int i = 15; i >= 0; i--) {
        out[3 + i] = (Py_UCS1)digits[high & 0xf];
        high >>= 4;
        out[19 + i] = (Py_UCS1)digits[low & 0xf];
        low >>= 4;
        out[36 + i] = (Py_UCS1)digits[id & 0xf];
        id >>= 4;
    }
    out[35] = '-';
    out[52] = '-';
    out[53] = '0';
    out[54] = (Py_UCS1)digits[flag_bits & 3];
    int failed = PyDict_SetItem(carrier, str_traceparent, header);
    Py_DECREF(header);
    return failed < 0 ? -1 : 1;
}

/* The steps after the span started; NULL with an exception when one failed. */
static PyObject *
started_call(PyObject *site, PyObject *span, PyObject *parent, PyObject *carrier,
             PyObject *attributes, int incoming)
{
    PyObject *base = parent != Py_None ? Py_NewRef(parent) : current_context();
    if (base == NULL) {
        return NULL;
    }
    PyObject *context = PyObject_CallOneArg(YCONST(Y_CONTEXT), base);
    Py_DECREF(base);
    if (context == NULL) {
        return NULL;
    }
    PyObject *layer_key = BSLOT(site, B_LAYER_KEY);
    if (PyDict_SetItem(context, CONST(K_SPAN_KEY), span) < 0
        || (layer_key != Py_None && PyDict_SetItem(context, layer_key, span) < 0)) {
        Py_DECREF(context);
        return NULL;
    }
    if (carrier != Py_None && !incoming) {
        PyObject *setter = BSLOT(site, B_SETTER);
        setter = setter == Py_None ? YCONST(Y_DEFAULT_SETTER) : setter;
        int quick = quick_inject(carrier, span, context, setter);
        PyObject *injected = quick != 0 ? NULL : PyObject_CallFunctionObjArgs(
            YCONST(Y_INJECT), carrier, span, context, setter, NULL);
        if (quick < 0 || (quick == 0 && injected == NULL)) {
            Py_DECREF(context);
            return NULL;
        }
        Py_XDECREF(injected);
    }
    PyObject *call = new_call(site, span, context, attributes);
    Py_DECREF(context);
    return call;
}

/* The span ended after a step of ours failed (the pending exception stays pending). */
static void
end_after_failure(PyObject *span)
{
    PyObject *exc = take_exception();
    PyObject *result = PyObject_CallMethodNoArgs(span, str_end);
    Py_XDECREF(result);
    end_finally(exc, result == NULL);
}

static PyObject *
site_start_steps(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    PyObject *carrier = Py_None, *parent = NULL, *attributes = NULL, *name = NULL, *span = NULL;
    PyObject *call = NULL, *result = NULL;
    PyObject *carrier_fn = BSLOT(self, B_CARRIER);
    if (carrier_fn != Py_None) {
        carrier = call_with(carrier_fn, NULL, args, nargs);
        if (carrier == NULL) {
            return NULL;
        }
    }
    else {
        Py_INCREF(carrier);
    }
    PyObject *layer_key = BSLOT(self, B_LAYER_KEY);
    int incoming = BSLOT(self, B_INCOMING) == Py_True;
    int nested = 0;
    if (incoming) {
        if (layer_key != Py_None) {
            PyObject *current = current_context();
            if (current == NULL) {
                goto done;
            }
            PyObject *outer = PyDict_GetItemWithError(current, layer_key);
            nested = outer != NULL && outer != Py_None;
            Py_DECREF(current);
            if (PyErr_Occurred()) {
                goto done;
            }
        }
        if (!nested) {
            PyObject *base = BSLOT(self, B_FALLS_BACK) == Py_True ? current_context()
                                                                   : Py_NewRef(Py_None);
            if (base == NULL) {
                goto done;
            }
            if (carrier == Py_None) {
                parent = base;
            }
            else {
                int quiet = quiet_environ(carrier, BSLOT(self, B_GETTER));
                parent = quiet < 0 ? NULL
                         : quiet ? Py_NewRef(base)
                                 : PyObject_CallFunctionObjArgs(YCONST(Y_EXTRACT), carrier, base,
                                                                BSLOT(self, B_GETTER), NULL);
                Py_DECREF(base);
                if (parent == NULL) {
                    goto done;
                }
            }
        }
    }
    else {
        parent = current_context();
        if (parent == NULL) {
            goto done;
        }
        if (layer_key != Py_None) {
            PyObject *outer = PyDict_Check(parent) ? PyDict_GetItemWithError(parent, layer_key)
                                                   : NULL;
            if (outer == NULL && PyErr_Occurred()) {
                goto done;
            }
            nested = outer != NULL && outer != Py_None;
        }
    }
    if (nested) { /* the outer call's context, no span */
        if (carrier != Py_None) {
            PyObject *injected = PyObject_CallMethodObjArgs(self, str_inject_nested, carrier,
                                                            Py_None, NULL);
            if (injected == NULL) {
                goto done;
            }
            Py_DECREF(injected);
        }
        result = Py_NewRef(Py_None);
        goto done;
    }
    attributes = call_with(BSLOT(self, B_ATTRIBUTES), NULL, args, nargs);
    if (attributes == NULL) {
        goto done;
    }
    name = call_with(BSLOT(self, B_SPAN_NAME), attributes, args, nargs);
    if (name == NULL) {
        goto done;
    }
    /* The tracer's own ``start_span`` (its SpanStarter), from its ``__dict__``: a generic
     * look-up on a tracer costs ten times as much. */
    PyObject *start = dict_attr(BSLOT(self, B_TRACER), str_start_span);
    if (start == NULL) {
        goto done;
    }
    PyObject *start_args[6] = {name, parent, BSLOT(self, B_KIND), attributes, Py_None, Py_None};
    span = PyObject_Vectorcall(start, start_args, 6, NULL);
    Py_DECREF(start);
    if (span == NULL) {
        goto done;
    }
    call = started_call(self, span, parent, carrier, attributes, incoming);
    if (call == NULL) {
        end_after_failure(span);
        goto done;
    }
    /* ``attach(context)``; last: nothing after it can fail but the allocations. */
    PyObject *context = PyObject_GetAttr(call, str_context);
    if (context == NULL) {
        goto done;
    }
    PyObject *context_token = PyContextVar_Set(CONST(K_CURRENT_VAR), context);
    Py_DECREF(context);
    if (context_token == NULL) {
        goto done;
    }
    PyObject *span_token = PyContextVar_Set(CONST(K_SPAN_VAR), span);
    if (span_token == NULL) {
        PyObject *exc = take_exception();
        (void)PyContextVar_Reset(CONST(K_CURRENT_VAR), context_token);
        Py_DECREF(context_token);
        give_exception(exc);
        goto done;
    }
    PyTypeObject *token_type = (PyTypeObject *)XCONST(X_TOKEN);
    PyObject *token = token_type->tp_alloc(token_type, 0);
    if (token == NULL) {
        (void)PyContextVar_Reset(CONST(K_SPAN_VAR), span_token);
        (void)PyContextVar_Reset(CONST(K_CURRENT_VAR), context_token);
        Py_DECREF(span_token);
        Py_DECREF(context_token);
        goto done;
    }
    ASLOT(token, T_CONTEXT) = context_token;
    ASLOT(token, T_SPAN) = span_token;
    if (Py_IS_TYPE(call, (PyTypeObject *)YCONST(Y_CALL))) {
        Py_SETREF(BSLOT(call, C_TOKEN), token); /* the class Call itself: its slot */
    }
    else {
        int set = PyObject_SetAttr(call, str_token, token);
        Py_DECREF(token);
        if (set < 0) {
            goto done;
        }
    }
    result = Py_NewRef(call);
done:
    Py_XDECREF(carrier);
    Py_XDECREF(parent);
    Py_XDECREF(attributes);
    Py_XDECREF(name);
    Py_XDECREF(span);
    Py_XDECREF(call);
    return result;
}


/* ``f(first, *args, **kwargs)`` from a vectorcall's arguments. */
static PyObject *
call_with_kw(PyObject *f, PyObject *first, PyObject *const *args, Py_ssize_t nargs,
             PyObject *kwnames)
{
    Py_ssize_t total = nargs + (kwnames != NULL ? PyTuple_GET_SIZE(kwnames) : 0);
    PyObject **stack = PyMem_Malloc((size_t)(total + 1) * sizeof(PyObject *));
    if (stack == NULL) {
        return PyErr_NoMemory();
    }
    stack[0] = first;
    for (Py_ssize_t i = 0; i < total; i++) {
        stack[i + 1] = args[i];
    }
    PyObject *result = PyObject_Vectorcall(f, stack, (size_t)nargs + 1, kwnames);
    PyMem_Free(stack);
    return result;
}

/* ``failed(site, exc)`` for the pending Exception (reported: 0); -1 with it raised again
 * when it is no Exception, or with the report's own exception. */
static int
report_site_failure(PyObject *site)
{
    PyObject *exc = take_exception();
    if (exc == NULL) {
        return 0;
    }
    if (!PyErr_GivenExceptionMatches(exc, PyExc_Exception)) {
        give_exception(exc);
        return -1;
    }
    PyObject *result = PyObject_CallFunctionObjArgs(YCONST(Y_FAILED), site, exc, NULL);
    Py_DECREF(exc);
    if (result == NULL) {
        return -1;
    }
    Py_DECREF(result);
    return 0;
}

/* ``Instrumentor.enabled()`` of instrumentors/base.py, the gate most sites have: ``active``
 * and not inside ``suppress_instrumentation()``. 1 open, 0 closed, -1 with an exception, -2
 * for a gate of another kind (a subclass's own ``enabled``, ``_is_suppressed`` replaced, an
 * ``active`` that is not a bool): the caller calls it. */
static int
instrumentor_gate(PyObject *gate)
{
    if (!PyMethod_Check(gate) || PyMethod_GET_FUNCTION(gate) != YCONST(Y_GATE)) {
        return -2;
    }
    PyObject *check = PyDict_GetItemWithError(YCONST(Y_GATE_GLOBALS), str_is_suppressed);
    if (check != YCONST(Y_IS_SUPPRESSED)) {
        return PyErr_Occurred() ? -1 : -2;
    }
    PyObject *dict = PyObject_GenericGetDict(PyMethod_GET_SELF(gate), NULL);
    if (dict == NULL) {
        PyErr_Clear();
        return -2;
    }
    PyObject *active = PyDict_GetItemWithError(dict, str_active);
    Py_DECREF(dict);
    if (active != Py_True) {
        return PyErr_Occurred() ? -1 : (active == Py_False ? 0 : -2);
    }
    PyObject *current = NULL;
    if (PyContextVar_Get(CONST(K_CURRENT_VAR), NULL, &current) < 0) {
        return -1;
    }
    if (current == NULL || !PyDict_Check(current)) {
        Py_XDECREF(current);
        return -2;
    }
    PyObject *flag = PyDict_GetItemWithError(current, CONST(K_SUPPRESS_KEY));
    Py_DECREF(current);
    if (flag == NULL && PyErr_Occurred()) {
        return -1;
    }
    return flag != Py_True;
}

static PyObject *
site_start(PyObject *self, PyObject *const *args, size_t nargsf, PyObject *kwnames)
{
    Py_ssize_t nargs = PyVectorcall_NARGS(nargsf);
    if (site_consts == NULL || exit_consts == NULL || kwnames != NULL
        || !Py_IS_TYPE(self, (PyTypeObject *)YCONST(Y_SITE))
        || BSLOT(self, B_EXCLUDED) != Py_None || BSLOT(self, B_REQUEST_HEADERS) != Py_None
        || (BSLOT(self, B_GATED) != Py_True && BSLOT(self, B_GATED) != Py_False)
        || (BSLOT(self, B_INCOMING) != Py_True && BSLOT(self, B_INCOMING) != Py_False)) {
        return call_with_kw(YCONST(Y_FALLBACK), self, args, nargs, kwnames);
    }
    if (BSLOT(self, B_GATED) == Py_True) {
        int truth = instrumentor_gate(BSLOT(self, B_ENABLED));
        if (truth == -2) {
            PyObject *open = PyObject_CallNoArgs(BSLOT(self, B_ENABLED));
            if (open == NULL) {
                return NULL;
            }
            truth = PyObject_IsTrue(open);
            Py_DECREF(open);
        }
        if (truth <= 0) {
            return truth < 0 ? NULL : Py_NewRef(Py_None);
        }
    }
    PyObject *call = site_start_steps(self, args, nargs);
    if (call == NULL) { /* a step of ours failed: reported, the call goes on untraced */
        if (report_site_failure(self) < 0) {
            return NULL;
        }
        Py_RETURN_NONE;
    }
    return call;
}


static PyMethodDef site_start_def = {
    "start", (PyCFunction)(void (*)(void))site_start, METH_FASTCALL | METH_KEYWORDS,
    "start(*args) -> Call | None: the call's span started and attached (None: not traced)",
};

static PyObject *
site_start_for(PyObject *module, PyObject *consts)
{
    if (starter_consts == NULL || exit_consts == NULL) {
        PyErr_SetString(PyExc_RuntimeError,
                        "site_start_for needs configure_span_starter and call_exit_for first");
        return NULL;
    }
    if (!PyTuple_CheckExact(consts) || PyTuple_GET_SIZE(consts) != Y_COUNT
        || !PyType_Check(PyTuple_GET_ITEM(consts, Y_SITE))
        || PyTuple_GET_ITEM(consts, Y_CALL) != XCONST(X_CALL)
        || !PyDict_CheckExact(PyTuple_GET_ITEM(consts, Y_PERF_COUNTER))
        || !PyDict_CheckExact(PyTuple_GET_ITEM(consts, Y_GATE_GLOBALS))
        || !PyType_Check(PyTuple_GET_ITEM(consts, Y_WSGI_GETTER))
        || !PyDict_CheckExact(PyTuple_GET_ITEM(consts, Y_TEXTMAP_GLOBALS))) {
        PyErr_Format(PyExc_TypeError, "site_start_for takes a tuple of %d", Y_COUNT);
        return NULL;
    }
    static const struct {
        int index;
        int type;
        const char *name;
    } slots[B_COUNT] = {
        {B_GATED, Y_SITE, "_gated"}, {B_ENABLED, Y_SITE, "enabled"},
        {B_EXCLUDED, Y_SITE, "excluded"}, {B_REQUEST_HEADERS, Y_SITE, "request_headers"},
        {B_CARRIER, Y_SITE, "carrier"}, {B_LAYER_KEY, Y_SITE, "_layer_key"},
        {B_INCOMING, Y_SITE, "_incoming"}, {B_FALLS_BACK, Y_SITE, "_falls_back"},
        {B_GETTER, Y_SITE, "getter"}, {B_ATTRIBUTES, Y_SITE, "attributes"},
        {B_SPAN_NAME, Y_SITE, "span_name"}, {B_TRACER, Y_SITE, "tracer"},
        {B_KIND, Y_SITE, "kind"}, {B_SETTER, Y_SITE, "setter"},
        {B_CALL_TYPE, Y_SITE, "call_type"}, {C_SITE, Y_CALL, "site"}, {C_SPAN, Y_CALL, "span"},
        {C_CONTEXT, Y_CALL, "context"}, {C_ATTRIBUTES, Y_CALL, "attributes"},
        {C_STATUS_CODE, Y_CALL, "status_code"},
        {C_EXCEPTION_RECORDED, Y_CALL, "exception_recorded"},
        {C_EXCEPTION, Y_CALL, "exception"}, {C_ROUTE, Y_CALL, "route"},
        {C_STARTED, Y_CALL, "started"}, {C_TOKEN, Y_CALL, "_token"},
        {C_ENDED, Y_CALL, "_ended"}, {C_DEFERRED, Y_CALL, "_deferred"},
    };
    Py_ssize_t offsets[B_COUNT];
    for (int i = 0; i < B_COUNT; i++) {
        offsets[slots[i].index] = slot_offset(PyTuple_GET_ITEM(consts, slots[i].type), slots[i].name);
        if (offsets[slots[i].index] < 0) {
            return NULL;
        }
    }
    PyObject *init = _PyType_Lookup((PyTypeObject *)PyTuple_GET_ITEM(consts, Y_CALL), str_init);
    if (init == NULL) {
        PyErr_SetString(PyExc_TypeError, "site_start_for: Call has no __init__");
        return NULL;
    }
    memcpy(site_offsets, offsets, sizeof(offsets));
    Py_XSETREF(call_init, Py_NewRef(init));
    Py_XSETREF(site_consts, Py_NewRef(consts));
    return PyDescr_NewMethod((PyTypeObject *)PyTuple_GET_ITEM(consts, Y_SITE), &site_start_def);
}

/* -- span_set_attribute ------------------------------------------------------------------ */

/* ``RecordingSpan.set_attribute`` of sdk/trace/span.py for its usual case: a span not ended, a
 * non-empty str key and a value of one of the tracer's ``fast_types`` or a 64-bit int, with
 * room under the limit (or the key already there). Anything else (a value to check or cut, a
 * dropped attribute, an ended span) takes the Python method, which does the same again. */

static PyObject *set_attribute_fallback;
static PyObject *str_fast_types;

static PyObject *
span_set_attribute(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 2 || starter_consts == NULL) {
        goto fallback;
    }
    PyObject *key = args[0], *value = args[1];
    PyObject *tracer = SLOT(self, S_TRACER), *attributes = SLOT(self, S_ATTRIBUTES);
    if (tracer == NULL || attributes == NULL || !PyDict_CheckExact(attributes)
        || SLOT(self, S_END_TIME) != Py_None || !PyUnicode_CheckExact(key)
        || PyUnicode_GET_LENGTH(key) == 0) {
        goto fallback;
    }
    int plain;
    if (PyLong_CheckExact(value)) {
        int overflow;
        (void)PyLong_AsLongLongAndOverflow(value, &overflow);
        plain = overflow == 0;
    }
    else {
        PyObject *fast = dict_attr(tracer, str_fast_types);
        if (fast == NULL) {
            return NULL;
        }
        plain = PyFrozenSet_CheckExact(fast) ? PySet_Contains(fast, (PyObject *)Py_TYPE(value)) : 0;
        Py_DECREF(fast);
        if (plain < 0) {
            return NULL;
        }
    }
    if (!plain) {
        goto fallback;
    }
    PyObject *limit = dict_attr(tracer, str_max_attributes);
    if (limit == NULL) {
        return NULL;
    }
    Py_ssize_t max = PyLong_CheckExact(limit) ? PyLong_AsSsize_t(limit) : -1;
    Py_DECREF(limit);
    if (max < 0) {
        PyErr_Clear();
        goto fallback;
    }
    int room = PyDict_GET_SIZE(attributes) < max;
    if (!room) {
        room = PyDict_Contains(attributes, key);
        if (room < 0) {
            return NULL;
        }
    }
    if (!room) {
        goto fallback; /* the drop and its count, as Python does them */
    }
    if (PyDict_SetItem(attributes, key, value) < 0) {
        return NULL;
    }
    Py_RETURN_NONE;
fallback:;
    PyObject *stack[3] = {self, nargs > 0 ? args[0] : NULL, nargs > 1 ? args[1] : NULL};
    if (nargs > 2) {
        PyErr_SetString(PyExc_TypeError, "set_attribute takes 2 arguments");
        return NULL;
    }
    return PyObject_Vectorcall(set_attribute_fallback, stack, (size_t)nargs + 1, NULL);
}

static PyMethodDef span_set_attribute_def = {
    "set_attribute", (PyCFunction)(void (*)(void))span_set_attribute, METH_FASTCALL,
    "set_attribute(key, value): one attribute, checked as the Python method checks it",
};

static PyObject *
set_attribute_for(PyObject *module, PyObject *fallback)
{
    if (starter_consts == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "set_attribute_for needs configure_span_starter first");
        return NULL;
    }
    Py_XSETREF(set_attribute_fallback, Py_NewRef(fallback));
    return PyDescr_NewMethod((PyTypeObject *)CONST(K_RECORDING), &span_set_attribute_def);
}


/* -- environ_attributes ------------------------------------------------------------------ */

/* ``server_environ_attributes`` of instrumentors/_http.py for the usual request: an exact dict
 * environ whose method is a known one, whose path is plain ASCII (nothing to percent-encode),
 * with a ``Host`` (or ``X-Forwarded-Host``) header, and whose CGI values are strings (the
 * peer's port may be an int). Anything else is handed to the Python function whole. The
 * module's helpers and tables are read from its globals on each call (a test may replace
 * them): ``redact_query``, ``_split_hosts``, ``_split_host_header``, ``protocol_version``. */

enum {
    E_METHOD, E_SCHEME, E_SCRIPT, E_PATH, E_QUERY, E_FORWARDED_HOST, E_HOST, E_REMOTE_ADDR,
    E_FORWARDED_FOR, E_REMOTE_PORT, E_AGENT, E_PROTOCOL,
    A_METHOD, A_SCHEME, A_PATH, A_QUERY, A_ADDRESS, A_PORT, A_CLIENT, A_PEER, A_PEER_PORT,
    A_AGENT, A_VERSION,
    G_KNOWN, G_REDACT, G_HOSTS, G_SPLIT, G_PORTS, G_VERSIONS, G_VERSION_OF,
    E_HTTP, E_SLASH, E_COMMA, E_STRIP, E_COUNT
};

static const char *const environ_names[E_COUNT] = {
    "REQUEST_METHOD", "wsgi.url_scheme", "SCRIPT_NAME", "PATH_INFO", "QUERY_STRING",
    "HTTP_X_FORWARDED_HOST", "HTTP_HOST", "REMOTE_ADDR", "HTTP_X_FORWARDED_FOR", "REMOTE_PORT",
    "HTTP_USER_AGENT", "SERVER_PROTOCOL",
    "http.request.method", "url.scheme", "url.path", "url.query", "server.address",
    "server.port", "client.address", "network.peer.address", "network.peer.port",
    "user_agent.original", "network.protocol.version",
    "KNOWN_METHODS", "redact_query", "_split_hosts", "_split_host_header", "_DEFAULT_PORTS",
    "_PROTOCOL_VERSIONS", "protocol_version",
    "http", "/", ",", "strip",
};

static PyObject *environ_strs[E_COUNT];
static PyObject *environ_globals, *environ_fallback;

#define ESTR(k) (environ_strs[(k)])

/* ``environ[name]`` borrowed, or NULL when absent (or on an error, then set). */
static PyObject *
environ_get(PyObject *environ, int name)
{
    return PyDict_GetItemWithError(environ, ESTR(name));
}

/* A global of the _http module, borrowed; NULL with an exception when it is missing. */
static PyObject *
http_global(int name)
{
    PyObject *value = PyDict_GetItemWithError(environ_globals, ESTR(name));
    if (value == NULL && !PyErr_Occurred()) {
        PyErr_Format(PyExc_NameError, "%U", ESTR(name));
    }
    return value;
}

/* 1 when every character of ``text`` stands in a URL path as it is (``_PLAIN_PATH``). */
static int
plain_path(PyObject *text)
{
    if (!PyUnicode_IS_ASCII(text)) {
        return 0;
    }
    const Py_UCS1 *c = PyUnicode_1BYTE_DATA(text);
    Py_ssize_t n = PyUnicode_GET_LENGTH(text);
    for (Py_ssize_t i = 0; i < n; i++) {
        Py_UCS1 ch = c[i];
        if (!((ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9')
              || (ch != 0 && strchr("/:@!$&'()*+,;=-._~%", ch) != NULL))) {
            return 0;
        }
    }
    return 1;
}

/* ``value`` when it is absent (``absent``), or an exact str; 0 for anything else. */
static int
str_or_absent(PyObject *value)
{
    return value == NULL || PyUnicode_CheckExact(value);
}

/* The attributes, or NULL with an exception; *handed is set when the Python one must run. */
static PyObject *
environ_attributes_fast(PyObject *environ, int *handed)
{
    PyObject *method = environ_get(environ, E_METHOD);
    PyObject *scheme = environ_get(environ, E_SCHEME);
    PyObject *script = environ_get(environ, E_SCRIPT);
    PyObject *path = environ_get(environ, E_PATH);
    PyObject *query = environ_get(environ, E_QUERY);
    PyObject *forwarded_host = environ_get(environ, E_FORWARDED_HOST);
    PyObject *host = environ_get(environ, E_HOST);
    PyObject *peer = environ_get(environ, E_REMOTE_ADDR);
    PyObject *forwarded = environ_get(environ, E_FORWARDED_FOR);
    PyObject *peer_port = environ_get(environ, E_REMOTE_PORT);
    PyObject *agent = environ_get(environ, E_AGENT);
    PyObject *protocol = environ_get(environ, E_PROTOCOL);
    if (PyErr_Occurred()) {
        return NULL;
    }
    PyObject *known = http_global(G_KNOWN);
    if (known == NULL) {
        return NULL;
    }
    /* The usual request, else the Python function: every value an exact str where read. */
    if (method == NULL || !PyUnicode_CheckExact(method) || !PyFrozenSet_CheckExact(known)
        || !str_or_absent(scheme) || !str_or_absent(script) || !str_or_absent(path)
        || !str_or_absent(query) || !str_or_absent(forwarded_host) || !str_or_absent(host)
        || !str_or_absent(peer) || !str_or_absent(forwarded) || !str_or_absent(agent)
        || !str_or_absent(protocol)
        || (peer_port != NULL && !PyUnicode_CheckExact(peer_port) && !PyLong_CheckExact(peer_port))) {
        *handed = 1;
        return NULL;
    }
    if (forwarded_host != NULL && PyUnicode_GET_LENGTH(forwarded_host) > 0) {
        host = forwarded_host;
    }
    if (host == NULL || PyUnicode_GET_LENGTH(host) == 0) {
        *handed = 1; /* SERVER_NAME and SERVER_PORT: the Python function reads them */
        return NULL;
    }
    int is_known = PySet_Contains(known, method);
    if (is_known <= 0) {
        if (is_known == 0) {
            *handed = 1;
        }
        return NULL;
    }
    if ((script != NULL && !plain_path(script)) || (path != NULL && !plain_path(path))) {
        *handed = 1;
        return NULL;
    }
    /* ``REMOTE_PORT`` as ``_port`` reads it: an int, or ASCII digits (else the Python one). */
    PyObject *peer_port_value = NULL;
    if (peer_port != NULL && PyUnicode_CheckExact(peer_port)) {
        Py_ssize_t n = PyUnicode_GET_LENGTH(peer_port);
        int digits = PyUnicode_IS_ASCII(peer_port) && n > 0;
        for (Py_ssize_t i = 0; digits && i < n; i++) {
            Py_UCS1 ch = PyUnicode_1BYTE_DATA(peer_port)[i];
            digits = ch >= '0' && ch <= '9';
        }
        if (!digits && n > 0) {
            *handed = 1; /* ``str.isdigit`` is wider than ASCII: the Python rule decides */
            return NULL;
        }
    }
    PyObject *attributes = PyDict_New();
    if (attributes == NULL) {
        return NULL;
    }
    PyObject *full_path = NULL, *split = NULL, *client = NULL, *version = NULL, *item = NULL;
    if (PyDict_SetItem(attributes, ESTR(A_METHOD), method) < 0
        || PyDict_SetItem(attributes, ESTR(A_SCHEME),
                          scheme != NULL && PyUnicode_GET_LENGTH(scheme) > 0 ? scheme : ESTR(E_HTTP)) < 0) {
        goto error;
    }
    if (script == NULL || PyUnicode_GET_LENGTH(script) == 0) {
        full_path = Py_NewRef(path != NULL ? path : ESTR(E_SLASH));
    }
    else {
        full_path = path != NULL ? PyUnicode_Concat(script, path) : Py_NewRef(script);
        if (full_path == NULL) {
            goto error;
        }
    }
    if (PyDict_SetItem(attributes, ESTR(A_PATH),
                       PyUnicode_GET_LENGTH(full_path) > 0 ? full_path : ESTR(E_SLASH)) < 0) {
        goto error;
    }
    if (query != NULL && PyUnicode_GET_LENGTH(query) > 0) {
        PyObject *redact = http_global(G_REDACT);
        item = redact != NULL ? PyObject_CallOneArg(redact, query) : NULL;
        if (item == NULL || PyDict_SetItem(attributes, ESTR(A_QUERY), item) < 0) {
            goto error;
        }
        Py_CLEAR(item);
    }
    PyObject *hosts = http_global(G_HOSTS);
    if (hosts == NULL) {
        goto error;
    }
    split = PyDict_Check(hosts) ? PyDict_GetItemWithError(hosts, host) : NULL;
    if (split != NULL) {
        Py_INCREF(split);
    }
    else if (PyErr_Occurred()) {
        goto error;
    }
    else {
        PyObject *split_host = http_global(G_SPLIT);
        split = split_host != NULL ? PyObject_CallOneArg(split_host, host) : NULL;
        if (split == NULL) {
            goto error;
        }
    }
    if (!PyTuple_CheckExact(split) || PyTuple_GET_SIZE(split) != 2) {
        PyErr_SetString(PyExc_TypeError, "a split host is an (address, port) tuple");
        goto error;
    }
    PyObject *address = PyTuple_GET_ITEM(split, 0), *port = PyTuple_GET_ITEM(split, 1);
    if (port == Py_None) {
        PyObject *ports = http_global(G_PORTS);
        if (ports == NULL) {
            goto error;
        }
        PyObject *chosen = PyDict_GetItemWithError(
            ports, scheme != NULL && PyUnicode_GET_LENGTH(scheme) > 0 ? scheme : ESTR(E_HTTP));
        if (chosen == NULL && PyErr_Occurred()) {
            goto error;
        }
        port = chosen != NULL ? chosen : Py_None;
    }
    int has_address = PyObject_IsTrue(address);
    if (has_address < 0) {
        goto error;
    }
    if (has_address) {
        if (PyDict_SetItem(attributes, ESTR(A_ADDRESS), address) < 0
            || (port != Py_None && PyDict_SetItem(attributes, ESTR(A_PORT), port) < 0)) {
            goto error;
        }
    }
    if (forwarded != NULL && PyUnicode_GET_LENGTH(forwarded) > 0) {
        PyObject *parts = PyUnicode_Split(forwarded, ESTR(E_COMMA), 1);
        client = parts != NULL && PyList_GET_SIZE(parts) > 0
                     ? PyObject_CallMethodNoArgs(PyList_GET_ITEM(parts, 0), ESTR(E_STRIP))
                     : NULL;
        Py_XDECREF(parts);
        if (client == NULL) {
            goto error;
        }
    }
    else {
        client = Py_NewRef(peer != NULL ? peer : Py_None);
    }
    if (client != Py_None && PyUnicode_GET_LENGTH(client) > 0
        && PyDict_SetItem(attributes, ESTR(A_CLIENT), client) < 0) {
        goto error;
    }
    if (peer != NULL && PyUnicode_GET_LENGTH(peer) > 0) {
        if (PyDict_SetItem(attributes, ESTR(A_PEER), peer) < 0) {
            goto error;
        }
        if (peer_port != NULL && PyLong_CheckExact(peer_port)) {
            peer_port_value = Py_NewRef(peer_port);
        }
        else if (peer_port != NULL && PyUnicode_GET_LENGTH(peer_port) > 0) {
            peer_port_value = PyLong_FromUnicodeObject(peer_port, 10);
            if (peer_port_value == NULL) {
                goto error;
            }
        }
        if (peer_port_value != NULL
            && PyDict_SetItem(attributes, ESTR(A_PEER_PORT), peer_port_value) < 0) {
            goto error;
        }
    }
    if (agent != NULL && PyUnicode_GET_LENGTH(agent) > 0
        && PyDict_SetItem(attributes, ESTR(A_AGENT), agent) < 0) {
        goto error;
    }
    if (protocol != NULL) {
        PyObject *versions = http_global(G_VERSIONS);
        if (versions == NULL) {
            goto error;
        }
        version = PyDict_Check(versions) ? PyDict_GetItemWithError(versions, protocol) : NULL;
        if (version == NULL && PyErr_Occurred()) {
            goto error;
        }
        int known_version = version != NULL ? PyObject_IsTrue(version) : 0;
        if (known_version < 0) {
            version = NULL;
            goto error;
        }
        if (known_version) {
            Py_INCREF(version);
        }
        else {
            PyObject *version_of = http_global(G_VERSION_OF);
            version = version_of != NULL ? PyObject_CallOneArg(version_of, protocol) : NULL;
            if (version == NULL) {
                goto error;
            }
        }
        int has_version = PyObject_IsTrue(version);
        if (has_version < 0
            || (has_version && PyDict_SetItem(attributes, ESTR(A_VERSION), version) < 0)) {
            goto error;
        }
    }
    Py_DECREF(full_path);
    Py_DECREF(split);
    Py_DECREF(client);
    Py_XDECREF(version);
    Py_XDECREF(peer_port_value);
    return attributes;
error:
    Py_DECREF(attributes);
    Py_XDECREF(full_path);
    Py_XDECREF(split);
    Py_XDECREF(client);
    Py_XDECREF(version);
    Py_XDECREF(item);
    Py_XDECREF(peer_port_value);
    return NULL;
}

static PyObject *
environ_attributes(PyObject *module, PyObject *environ)
{
    if (environ_globals != NULL && PyDict_CheckExact(environ)) {
        int handed = 0;
        PyObject *attributes = environ_attributes_fast(environ, &handed);
        if (attributes != NULL || !handed) {
            return attributes;
        }
    }
    return PyObject_CallOneArg(environ_fallback, environ);
}

static PyMethodDef environ_attributes_def = {
    "server_environ_attributes", environ_attributes, METH_O,
    "server_environ_attributes(environ) -> the request attributes of a SERVER span",
};

static PyObject *
environ_attributes_for(PyObject *module, PyObject *consts)
{
    if (!PyTuple_CheckExact(consts) || PyTuple_GET_SIZE(consts) != 2
        || !PyDict_CheckExact(PyTuple_GET_ITEM(consts, 0))) {
        PyErr_SetString(PyExc_TypeError, "environ_attributes_for takes (globals, fallback)");
        return NULL;
    }
    if (environ_strs[0] == NULL) {
        for (int i = 0; i < E_COUNT; i++) {
            environ_strs[i] = PyUnicode_InternFromString(environ_names[i]);
            if (environ_strs[i] == NULL) {
                return NULL;
            }
        }
    }
    Py_XSETREF(environ_globals, Py_NewRef(PyTuple_GET_ITEM(consts, 0)));
    Py_XSETREF(environ_fallback, Py_NewRef(PyTuple_GET_ITEM(consts, 1)));
    return PyCFunction_New(&environ_attributes_def, NULL);
}


/* -- batch_on_end ------------------------------------------------------------------------ */

/* ``BatchSpanProcessor.on_end`` of sdk/processors/batch.py for its usual case: a sampled span
 * of this SDK's recording class joins a queue that holds some spans already, has room, is below
 * the compaction size, of a processor not shut down: the count, the append and the worker's
 * wake-up at a full batch. An empty or full queue (where the Python one checks for a fork and
 * an outage), shutdown, compaction, a span of another class and anything unexpected take the
 * Python ``on_end`` before any side effect. Installed on the class by ``batch_on_end_for``. */

enum { Q_PROCESSOR, Q_FALLBACK, Q_COMPACT_BEYOND, Q_COUNT };

static PyObject *queue_consts;
static Py_ssize_t compact_beyond;
static PyObject *str_queue, *str_max_queue_size, *str_shutdown, *str_count_queued,
    *str_batch_size, *str_wake, *str_is_set, *str_set, *str_append;

#define QCONST(k) PyTuple_GET_ITEM(queue_consts, (k))

/* An int attribute of the processor's ``__dict__`` as a Py_ssize_t; -1 when not an int. */
static Py_ssize_t
dict_size(PyObject *dict, PyObject *name)
{
    PyObject *value = PyDict_GetItemWithError(dict, name);
    if (value == NULL || !PyLong_CheckExact(value)) {
        return -1; /* an exception of the look-up stays set: the caller raises it */
    }
    Py_ssize_t size = PyLong_AsSsize_t(value);
    if (size == -1 && PyErr_Occurred()) {
        PyErr_Clear(); /* too large for the fast path: the Python method decides */
    }
    return size;
}

/* 1 when the fast path queued the span, 0 when the Python ``on_end`` must take it, -1 on error. */
static int
queue_span(PyObject *dict, PyObject *span)
{
    PyObject *queue = PyDict_GetItemWithError(dict, str_queue);
    if (queue == NULL || PyDict_GetItemWithError(dict, str_shutdown) != Py_False) {
        return PyErr_Occurred() ? -1 : 0;
    }
    Py_ssize_t size = PyObject_Length(queue);
    Py_ssize_t max_size = dict_size(dict, str_max_queue_size);
    Py_ssize_t batch_size = dict_size(dict, str_batch_size);
    if (size <= 0 || max_size < 0 || batch_size < 0 || size >= max_size || size >= compact_beyond) {
        return PyErr_Occurred() ? -1 : 0;
    }
    PyObject *count = PyDict_GetItemWithError(dict, str_count_queued);
    if (count == NULL) {
        return PyErr_Occurred() ? -1 : 0;
    }
    Py_INCREF(queue);
    Py_INCREF(count);
    PyObject *counted = PyObject_CallNoArgs(count);
    Py_DECREF(count);
    PyObject *appended = counted != NULL ? PyObject_CallMethodOneArg(queue, str_append, span) : NULL;
    Py_XDECREF(counted);
    if (appended == NULL) {
        Py_DECREF(queue);
        return -1;
    }
    Py_DECREF(appended);
    size = PyObject_Length(queue);
    Py_DECREF(queue);
    if (size < 0) {
        return -1;
    }
    if (size >= batch_size) { /* a full batch: wake the worker unless it is awake */
        PyObject *wake = PyDict_GetItemWithError(dict, str_wake);
        if (wake == NULL) {
            return PyErr_Occurred() ? -1 : 1;
        }
        Py_INCREF(wake);
        PyObject *is_set = PyObject_CallMethodNoArgs(wake, str_is_set);
        int awake = is_set != NULL ? PyObject_IsTrue(is_set) : -1;
        Py_XDECREF(is_set);
        PyObject *set = awake == 0 ? PyObject_CallMethodNoArgs(wake, str_set) : NULL;
        Py_DECREF(wake);
        if (awake < 0 || (awake == 0 && set == NULL)) {
            return -1;
        }
        Py_XDECREF(set);
    }
    return 1;
}

static PyObject *
batch_on_end(PyObject *self, PyObject *span)
{
    if (Py_IS_TYPE(span, (PyTypeObject *)CONST(K_RECORDING))) {
        PyObject *flags = SLOT(span, S_FLAGS);
        if (flags != NULL && PyLong_Check(flags)) {
            long bits = PyLong_AsLong(flags);
            if (bits == -1 && PyErr_Occurred()) {
                return NULL;
            }
            if (!(bits & 1)) {
                Py_RETURN_NONE; /* record-only spans are not exported */
            }
            PyObject *dict = PyObject_GenericGetDict(self, NULL);
            if (dict == NULL) {
                return NULL;
            }
            int queued = queue_span(dict, span);
            Py_DECREF(dict);
            if (queued < 0) {
                return NULL;
            }
            if (queued) {
                Py_RETURN_NONE;
            }
        }
    }
    return PyObject_CallFunctionObjArgs(QCONST(Q_FALLBACK), self, span, NULL);
}

static PyMethodDef batch_on_end_def = {
    "on_end", batch_on_end, METH_O, "on_end(span): queue a sampled span for export; never blocks",
};

static PyObject *
batch_on_end_for(PyObject *module, PyObject *consts)
{
    if (starter_consts == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "batch_on_end_for needs configure_span_starter first");
        return NULL;
    }
    if (!PyTuple_CheckExact(consts) || PyTuple_GET_SIZE(consts) != Q_COUNT
        || !PyType_Check(PyTuple_GET_ITEM(consts, Q_PROCESSOR))
        || !PyLong_CheckExact(PyTuple_GET_ITEM(consts, Q_COMPACT_BEYOND))) {
        PyErr_Format(PyExc_TypeError, "batch_on_end_for takes a tuple of %d", Q_COUNT);
        return NULL;
    }
    Py_ssize_t beyond = PyLong_AsSsize_t(PyTuple_GET_ITEM(consts, Q_COMPACT_BEYOND));
    if (beyond < 0) {
        return NULL;
    }
    compact_beyond = beyond;
    Py_XSETREF(queue_consts, Py_NewRef(consts));
    return PyDescr_NewMethod((PyTypeObject *)PyTuple_GET_ITEM(consts, Q_PROCESSOR), &batch_on_end_def);
}

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
    if (str_enabled == NULL) {
        str_enabled = PyUnicode_InternFromString("enabled");
        str_parent_table = PyUnicode_InternFromString("_parent_table");
        str_fixed_drops = PyUnicode_InternFromString("_fixed_drops");
        str_root_result = PyUnicode_InternFromString("_root_result");
        str_random_bit = PyUnicode_InternFromString("_random_bit");
        str_new_trace_id = PyUnicode_InternFromString("_new_trace_id");
        str_new_span_id = PyUnicode_InternFromString("_new_span_id");
        str_max_attributes = PyUnicode_InternFromString("max_attributes");
        str_max_attribute_length = PyUnicode_InternFromString("max_attribute_length");
        str_started = PyUnicode_InternFromString("_started");
        str_on_start = PyUnicode_InternFromString("on_start");
        str_get_span_context = PyUnicode_InternFromString("get_span_context");
    }
    if (str_ended_count == NULL) {
        str_ended_count = PyUnicode_InternFromString("ended");
        str_on_end = PyUnicode_InternFromString("on_end");
        str_end = PyUnicode_InternFromString("end");
        str_hook = PyUnicode_InternFromString("hook");
        str_end_kind = PyUnicode_InternFromString("end");
        str_on_end_kind = PyUnicode_InternFromString("on_end");
        str_detach_kind = PyUnicode_InternFromString("detach");
        str_call_end_hooks = PyUnicode_InternFromString("CALL_END_HOOKS");
        str_start_span = PyUnicode_InternFromString("start_span");
        str_inject_nested = PyUnicode_InternFromString("_inject");
        str_token = PyUnicode_InternFromString("_token");
        str_perf_counter = PyUnicode_InternFromString("perf_counter");
        str_init = PyUnicode_InternFromString("__init__");
        str_is_suppressed = PyUnicode_InternFromString("_is_suppressed");
        str_global = PyUnicode_InternFromString("_global");
        str_default = PyUnicode_InternFromString("_default");
        str_environ_traceparent = PyUnicode_InternFromString("HTTP_TRACEPARENT");
        str_environ_baggage = PyUnicode_InternFromString("HTTP_BAGGAGE");
        str_traceparent = PyUnicode_InternFromString("traceparent");
        if (str_traceparent == NULL || str_is_suppressed == NULL || str_global == NULL || str_default == NULL
            || str_environ_traceparent == NULL || str_environ_baggage == NULL) {
            return -1;
        }
        str_fast_types = PyUnicode_InternFromString("fast_types");
        if (str_fast_types == NULL) {
            return -1;
        }
        str_queue = PyUnicode_InternFromString("_queue");
        str_max_queue_size = PyUnicode_InternFromString("_max_queue_size");
        str_shutdown = PyUnicode_InternFromString("_shutdown");
        str_count_queued = PyUnicode_InternFromString("_count_queued");
        str_batch_size = PyUnicode_InternFromString("_batch_size");
        str_wake = PyUnicode_InternFromString("_wake");
        str_is_set = PyUnicode_InternFromString("is_set");
        str_set = PyUnicode_InternFromString("set");
        str_append = PyUnicode_InternFromString("append");
        if (str_queue == NULL || str_max_queue_size == NULL || str_shutdown == NULL
            || str_count_queued == NULL || str_batch_size == NULL || str_wake == NULL
            || str_is_set == NULL || str_set == NULL || str_append == NULL) {
            return -1;
        }
        if (str_init == NULL || str_perf_counter == NULL || str_start_span == NULL || str_inject_nested == NULL || str_token == NULL) {
            return -1;
        }
        if (str_call_end_hooks == NULL || str_ended_count == NULL || str_on_end == NULL || str_end == NULL || str_hook == NULL
            || str_end_kind == NULL || str_on_end_kind == NULL || str_detach_kind == NULL) {
            return -1;
        }
    }
    if (str_active == NULL || str_context == NULL || str_span == NULL || str_ended == NULL
        || str_close == NULL || str_enabled == NULL || str_parent_table == NULL
        || str_fixed_drops == NULL || str_root_result == NULL || str_random_bit == NULL
        || str_new_trace_id == NULL || str_new_span_id == NULL || str_max_attributes == NULL
        || str_max_attribute_length == NULL || str_started == NULL || str_on_start == NULL
        || str_get_span_context == NULL || PyType_Ready(&RecordFactoryType) < 0
        || PyType_Ready(&ContextStreamType) < 0 || PyType_Ready(&SpanStarterType) < 0) {
        return -1;
    }
    if (PyModule_AddObjectRef(module, "SpanStarter", (PyObject *)&SpanStarterType) < 0) {
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
    {"configure_span_starter", configure_span_starter, METH_O,
     "configure_span_starter(constants): the SDK's classes and constants SpanStarter uses"},
    {"call_exit_for", call_exit_for, METH_O,
     "call_exit_for(constants) -> the native (__exit__, end, detach) of the toolkit's Call"},
    {"set_attribute_for", set_attribute_for, METH_O,
     "set_attribute_for(fallback) -> the native set_attribute of RecordingSpan"},
    {"environ_attributes_for", environ_attributes_for, METH_O,
     "environ_attributes_for((globals, fallback)) -> the native server_environ_attributes"},
    {"batch_on_end_for", batch_on_end_for, METH_O,
     "batch_on_end_for(constants) -> the native on_end of the BatchSpanProcessor class"},
    {"site_start_for", site_start_for, METH_O,
     "site_start_for(constants) -> the native start of the toolkit's CallSite class"},
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
