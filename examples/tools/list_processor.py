# sum / max / min / mean of a list of numbers (seed 001's "List Processor").
import statistics


def run(args):
    items = args.get("items", [])
    operation = args.get("operation", "sum")
    operations = {"sum": sum, "max": max, "min": min, "mean": statistics.fmean}
    if operation not in operations:
        return {"ok": False, "error": {"message": f"Unknown operation: {operation}",
                                       "type": "ValueError"}}
    return {"ok": True, "data": {"result": operations[operation](items)}}
