"""core_client"""
